"""The package's modules import in one direction: the registry imports
nothing of the metrics or the expositions above it (at module level or in a
function); the metrics reach it, and it knows them only as they register."""

import ast
import os

import promshm

PACKAGE = os.path.dirname(promshm.__file__)


def imported_modules(module):
    """The promshm modules that ``promshm.<module>`` imports anywhere in it."""
    with open(os.path.join(PACKAGE, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("promshm."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("promshm."))
    return found


def test_registry_imports_neither_metrics_nor_exposition():
    assert not imported_modules("registry") & {"metrics", "exposition", "compat", "push", "openmetrics"}


def test_metrics_register_what_the_registry_needs():
    from promshm import metrics, registry

    assert registry._METRICS.base is metrics.MetricWrapperBase
    assert registry._METRICS.info is metrics.Info
    assert registry._METRICS.use_created() == metrics._use_created
