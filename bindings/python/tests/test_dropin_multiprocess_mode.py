"""promshm.compat in prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR
set): what prometheus-flask-exporter and django-prometheus need of the drop-in
(test_dropin_frameworks.py runs them for real). Each case runs in a fresh
interpreter, since compat.install() must come before prometheus_client is imported."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import child_env

CHILDREN = r'''
import json, os, sys
import promshm.compat
promshm.compat.install()
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

own = CollectorRegistry()            # as prometheus-flask-exporter makes it
hits = Counter("hits", "Hits.", ["w"], registry=own)
unapplied = Gauge("unapplied_total", "A gauge named like a counter.", multiprocess_mode="max")
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        for _ in range(1000):
            hits.labels("x").inc()
        unapplied.set(i + 1)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    assert os.waitpid(pid, 0)[1] == 0
scrape = CollectorRegistry()          # a fresh one at scrape time, as the exporter does
MultiProcessCollector(scrape)
text = generate_latest(scrape).decode()
out = {}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
out["renamed_in_text"] = ":promshm_renamed" in text
print(json.dumps(out))
'''


def _run(tmp_path, **env):
    e = child_env(PROMSHM_DIR=str(tmp_path), **env)
    e.pop("PROMSHM_PROMETHEUS_CLIENT", None)
    r = subprocess.run([sys.executable, "-c", CHILDREN], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_collector_registry_is_shared_and_eager_in_multiprocess_mode(tmp_path):
    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    out = _run(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(mpdir))
    # children forked before any update and exiting with os._exit (no flush):
    # exact only because the updates went straight into the shared area
    assert out['hits_total{"w": "x"}'] == 4000, out
    assert out["unapplied_total{}"] == 4, out
    assert out["renamed_in_text"] is False
    assert list(mpdir.iterdir()) == [], "no prometheus_client .db files"


def test_without_multiprocess_mode_collector_registry_stays_private(tmp_path):
    """Without PROMETHEUS_MULTIPROC_DIR a CollectorRegistry() is private (per
    process, as in prometheus_client): a fresh scrape registry sees the shared
    REGISTRY only, and the renamed gauge still renders under its own name."""
    out = _run(tmp_path)
    assert not [k for k in out if k.startswith("hits")], out
    assert out["renamed_in_text"] is False
