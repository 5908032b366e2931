"""Put on PYTHONPATH of an app process (and, by inheritance, its workers) by
test_dropin_frameworks.py: ``import prometheus_client`` then resolves to
promshm's own API (promshm.compat) before the framework imports it.

With PROMSHM_DROPIN_MARKS set, each process leaves ``<pid>`` there naming the
module ``prometheus_client`` resolved to, so the test can prove the master and
every worker ran through the drop-in."""

import os

import promshm.compat

promshm.compat.install()

_marks = os.environ.get("PROMSHM_DROPIN_MARKS")
if _marks:
    import sys

    with open(os.path.join(_marks, str(os.getpid())), "w") as _f:
        _f.write(sys.modules["prometheus_client"].__name__)
