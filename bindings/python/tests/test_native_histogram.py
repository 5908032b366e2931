"""promshm.NativeHistogram, and promshm.Histogram with prometheus_client's
``native_histogram_*`` options, across processes: 4 forked workers observe known
values; the protobuf page, decoded by the independent decoder (protoc's
``metrics_pb2`` of the upstream metrics.proto, run by the PyPI ``protobuf``
package), has the exact count of every native bucket, the zero bucket, the
exact sum and count; the text page shows ``_count``, ``_sum`` and one
``+Inf`` bucket. With explicit ``buckets=`` the one family has classic
buckets too (both views, exact, in one protobuf histogram; the classic ones
in text)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import promshm
from conftest import REPO, child_env, parse_text, value

sys.path.insert(0, str(REPO / "tests" / "proto"))
from pbdecode import compile_pb2, decode, missing  # noqa: E402


@pytest.fixture(scope="module")
def pb2(tmp_path_factory):
    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(why)
    if why:
        pytest.skip(why)
    return compile_pb2(tmp_path_factory.mktemp("pb2"))


# Dyadic values (an exact sum in any order); factor 2 is schema 0, so bucket
# i holds (2^(i-1), 2^i].
VALUES = (0.0, 0.25, 1.0, 3.0, 4.0, -0.5, -6.0)
WORKERS_SCRIPT = """
import multiprocessing as mp, sys
import promshm

H = promshm.%s("nh_latency", "Latency.", ["route"], unit="seconds",
                native_histogram_bucket_factor=2.0,
                native_histogram_zero_threshold=0.125, %s)
assert type(H) is promshm.NativeHistogram, type(H)
VALUES = %r

def work(i):
    s = H.labels("/a")
    for r in range(500):
        for k in range(len(VALUES)):
            v = VALUES[(k + r + i) %% len(VALUES)]
            if r == 0 and v == 3.0:
                s.observe(v, {"trace_id": "w%%d" %% i})
            else:
                s.observe(v)

if __name__ == "__main__":
    procs = [mp.get_context("fork").Process(target=work, args=(i,)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, p.exitcode
    assert H.labels("/a").get() == (4 * 500 * len(VALUES), 4 * 500 * sum(VALUES))
    out = sys.stdout.buffer
    text = promshm.REGISTRY.render("prometheus")
    out.write(str(len(text)).encode() + b"\\n" + text)
    out.write(promshm.REGISTRY.render("protobuf"))
"""


def buckets(spans, deltas):
    out, idx, count, it = {}, 0, 0, iter(deltas)
    for s in spans:
        idx += s.offset
        for _ in range(s.length):
            count += next(it)
            if count:
                out[idx] = count
            idx += 1
    return out


def run_workers(tmp_path: Path, cls: str, options: str = ""):
    """Run the 4 forked workers of ``WORKERS_SCRIPT`` (``options``: more
    keyword arguments of the histogram); their text and protobuf pages."""
    script = tmp_path / "workers.py"
    script.write_text(textwrap.dedent(WORKERS_SCRIPT % (cls, options, VALUES)))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=child_env(PROMSHM_DIR=str(tmp_path)),
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    n_text, rest = proc.stdout.split(b"\n", 1)
    return rest[: int(n_text)].decode(), rest[int(n_text) :]


@pytest.mark.parametrize("cls", ["NativeHistogram", "Histogram"])
def test_forked_workers_exact_native_buckets(tmp_path: Path, pb2, cls: str) -> None:
    text, pb = run_workers(tmp_path, cls)
    n = 4 * 500
    fams = decode(pb2, pb)
    f = fams["nh_latency_seconds"]
    assert f.type == pb2.MetricType.Value("HISTOGRAM")
    h = f.metric[0].histogram
    assert (h.schema, h.zero_threshold, h.zero_count) == (0, 0.125, n)
    assert (h.sample_count, h.sample_sum) == (n * len(VALUES), n * sum(VALUES))
    # No classic bucket: only the +Inf one that carries the newest exemplar
    # (for receivers older than ``exemplars``); 3.0's, from one worker.
    assert [(b.upper_bound, b.cumulative_count) for b in h.bucket] == [(float("inf"), n * len(VALUES))]
    assert h.bucket[0].exemplar.value == 3.0 and [e.value for e in h.exemplars] == [3.0]
    # 0.25 -> -2, 1 -> 0, 3 and 4 -> 2; negative 0.5 -> -1, 6 -> 3.
    assert buckets(h.positive_span, h.positive_delta) == {-2: n, 0: n, 2: 2 * n}
    assert buckets(h.negative_span, h.negative_delta) == {-1: n, 3: n}

    samples = parse_text(text)
    assert value(samples, "nh_latency_seconds_count", route="/a") == n * len(VALUES)
    assert value(samples, "nh_latency_seconds_sum", route="/a") == n * sum(VALUES)
    assert value(samples, "nh_latency_seconds_bucket", route="/a", le="+Inf") == n * len(VALUES)
    assert text.count("nh_latency_seconds_bucket") == 1


def test_options_are_checked(registry: promshm.CollectorRegistry) -> None:
    with pytest.raises(promshm.errors.PromshmError):
        promshm.NativeHistogram("nh_bad", "Bad.", registry=registry, native_histogram_bucket_factor=0.5)
    h = promshm.NativeHistogram("nh_ok", "Ok.", registry=registry)
    h.observe(2.0)
    with pytest.raises(ValueError):
        h.observe(float("nan"))
    assert h.get() == (1, 2.0)


def native_of(pb2, registry: promshm.CollectorRegistry, name: str):
    """The one series' protobuf ``Histogram`` of family ``name``."""
    return decode(pb2, registry.render("protobuf"))[name].metric[0].histogram


def test_histogram_options_by_prometheus_client_names(registry: promshm.CollectorRegistry, pb2) -> None:
    h = promshm.Histogram(
        "nh_opts",
        "Options.",
        registry=registry,
        native_histogram_bucket_factor=2.0,
        native_histogram_zero_threshold=0.5,
        native_histogram_max_bucket_number=2,
        native_histogram_max_value=1024.0,
    )
    assert isinstance(h, promshm.NativeHistogram)
    # Schema 0: 1 -> bucket 0, 4 -> 2, 2^20 clamped into max_value's bucket 10;
    # 0.25 is in the zero bucket [-0.5, 0.5].
    for v in (0.25, 1.0, 4.0, 2.0**20):
        h.observe(v)
    pb = native_of(pb2, registry, "nh_opts")
    assert (pb.zero_threshold, pb.zero_count, pb.sample_count, pb.sample_sum) == (0.5, 1, 4, 5.25 + 2.0**20)
    # 3 buckets > max 2: each halving maps i -> (i+1)>>1: {0, 2, 10} at
    # schema 0, {0, 1, 5} at -1, {0, 1, 3} at -2, {0, 1, 2} at -3, {0, 1} at -4.
    assert pb.schema == -4
    assert buckets(pb.positive_span, pb.positive_delta) == {0: 1, 1: 2}


def test_histogram_without_factor_stays_classic(registry: promshm.CollectorRegistry) -> None:
    for factor in (None, 1.0):
        kw = {} if factor is None else {"native_histogram_bucket_factor": factor}
        h = promshm.Histogram(
            f"classic_{int(factor or 0)}", "Classic.", registry=registry, buckets=(1.0, 2.0),
            native_histogram_zero_threshold=0.5, **kw,
        )
        assert type(h) is promshm.Histogram and h.buckets == (1.0, 2.0, float("inf"))


def test_histogram_buckets_with_factor_give_both_views(registry: promshm.CollectorRegistry, pb2) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = promshm.Histogram("nh_both", "Both.", registry=registry, buckets=(1.0, 2.0), native_histogram_bucket_factor=2.0)
        # Positional buckets too (prometheus_client's order).
        h2 = promshm.Histogram("nh_pos", "Pos.", [], "", "", "", registry, None, [1.0, 2.0, float("inf")], native_histogram_bucket_factor=2.0)
    assert type(h) is promshm.NativeHistogram and h.buckets == (1.0, 2.0, float("inf"))
    assert type(h2) is promshm.NativeHistogram and h2.buckets == h.buckets
    assert promshm.NativeHistogram("nh_native_only", "N.", registry=registry).buckets == ()
    for v in (0.5, 1.0, 1.5, 3.0, 5.0):
        h.observe(v)
    h2.observe(5.0)
    assert [(b.upper_bound, b.cumulative_count) for b in native_of(pb2, registry, "nh_pos").bucket] == [(1.0, 0), (2.0, 0)]
    pb = native_of(pb2, registry, "nh_both")
    assert (pb.schema, pb.sample_count, pb.sample_sum) == (0, 5, 11.0)
    assert [(b.upper_bound, b.cumulative_count) for b in pb.bucket] == [(1.0, 2), (2.0, 3)]
    # 0.5 -> -1, 1 -> 0, 1.5 -> 1, 3 -> 2, 5 -> 3.
    assert buckets(pb.positive_span, pb.positive_delta) == {-1: 1, 0: 1, 1: 1, 2: 1, 3: 1}
    samples = parse_text(registry.render("prometheus").decode())
    assert value(samples, "nh_both_bucket", le="1.0") == 2
    assert value(samples, "nh_both_bucket", le="2.0") == 3
    assert value(samples, "nh_both_bucket", le="+Inf") == 5
    assert value(samples, "nh_both_count") == 5
    with pytest.raises(ValueError):
        promshm.Histogram("nh_bad_b", "B.", registry=registry, buckets=(2.0, 1.0), native_histogram_bucket_factor=2.0)




def test_forked_workers_exact_classic_and_native_buckets(tmp_path: Path, pb2) -> None:
    text, pb = run_workers(tmp_path, "Histogram", "buckets=[0.5, 2.0, 5.0]")
    n = 4 * 500
    h = decode(pb2, pb)["nh_latency_seconds"].metric[0].histogram
    assert (h.schema, h.zero_threshold, h.zero_count) == (0, 0.125, n)
    assert (h.sample_count, h.sample_sum) == (n * len(VALUES), n * sum(VALUES))
    # Native: 0.25 -> -2, 1 -> 0, 3 and 4 -> 2; negative 0.5 -> -1, 6 -> 3.
    assert buckets(h.positive_span, h.positive_delta) == {-2: n, 0: n, 2: 2 * n}
    assert buckets(h.negative_span, h.negative_delta) == {-1: n, 3: n}
    # Classic, in the same message: 0, 0.25, -0.5, -6 <= 0.5; 1 <= 2; 3, 4 <= 5.
    classic = [(b.upper_bound, b.cumulative_count) for b in h.bucket]
    assert classic == [(0.5, 4 * n), (2.0, 5 * n), (5.0, 7 * n)]
    # The exemplar of 3.0 (one worker's, the newest) on its bucket, le=5, and
    # in the native histogram's exemplars.
    ex = h.bucket[2].exemplar
    assert ex.value == 3.0 and ex.label[0].value in {"w0", "w1", "w2", "w3"}
    assert [e.value for e in h.exemplars] == [3.0]

    samples = parse_text(text)
    assert value(samples, "nh_latency_seconds_bucket", route="/a", le="0.5") == 4 * n
    assert value(samples, "nh_latency_seconds_bucket", route="/a", le="2.0") == 5 * n
    assert value(samples, "nh_latency_seconds_bucket", route="/a", le="5.0") == 7 * n
    assert value(samples, "nh_latency_seconds_bucket", route="/a", le="+Inf") == 7 * n
    assert value(samples, "nh_latency_seconds_count", route="/a") == 7 * n
    assert value(samples, "nh_latency_seconds_sum", route="/a") == n * sum(VALUES)
