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


def _package_imports():
    """``{module: the promshm modules it imports}`` for every module of the
    package (subpackages too; at module level and in functions; imports only
    for type checkers left out), by dotted name below ``promshm``."""
    modules = {}
    for directory, _dirs, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(directory, name), PACKAGE)[:-3].replace(os.sep, ".")
                modules[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(directory, name)
    graph = {}
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        parts = [] if module == "__init__" else module.split(".")
        here = parts if is_package else parts[:-1]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        found = set()

        def visit(node):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                    continue
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = here[: len(here) - (child.level - 1)]
                    elif child.module and child.module.split(".")[0] == "promshm":
                        base = []
                        child_module = child.module.split(".", 1)[1] if "." in child.module else ""
                    else:
                        continue
                    target = base + (
                        (child.module.split(".") if child.level and child.module else [])
                        if child.level
                        else ([child_module] if child_module else [])
                    )
                    for alias in child.names:
                        sub = ".".join(target + [alias.name])
                        found.add(sub if sub in modules else ".".join(target))
                elif isinstance(child, ast.Import):
                    for alias in child.names:
                        if alias.name.startswith("promshm."):
                            name = alias.name.split(".", 1)[1]
                            while name not in modules and "." in name:
                                name = name.rsplit(".", 1)[0]
                            found.add(name)
                visit(child)

        visit(tree)
        # A module's own package (imported first anyway) is not an edge.
        graph[module] = {m for m in found if m in modules and m != module and not module.startswith(m + ".")}
    return graph


def test_no_import_circle_in_the_package():
    """No module of the package reaches itself through its imports (the
    expositions: exposition -> push, openmetrics.exposition -> _formats)."""
    graph = _package_imports()
    assert "_formats" in graph["push"] and "exposition" not in graph["push"]
    assert "_formats" in graph["openmetrics.exposition"] and "exposition" not in graph["openmetrics.exposition"]
    circles = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                circles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
    assert circles == []
