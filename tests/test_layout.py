"""The rules the layout relies on: who may import Flask and gnupg, and no import-time effects."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("app", "mail", "keys")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def sources():
    for package in PACKAGES:
        yield from (ROOT / package).rglob("*.py")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("flask", "app/web/"),
        ("flask_login", "app/web/"),
        ("flask_wtf", "app/web/"),
        ("gnupg", "keys/"),
    ],
)
def test_only_its_own_package_imports(module, allowed):
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources()
        if module in imported_modules(path) and not str(path.relative_to(ROOT)).startswith(allowed)
    ]
    assert offenders == []


@pytest.mark.parametrize("library", ["mail", "keys"])
def test_the_libraries_never_import_the_application(library):
    """mail/ and keys/ stand on their own: no import of app, at module level or in a function."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / library).rglob("*.py")
        if "app" in imported_modules(path)
    ]
    assert offenders == []


def test_importing_every_module_has_no_side_effects(tmp_path):
    """Importing touches no instance, database, key or network: it only defines things."""
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sources()
        if "migrations" not in path.parts and path.name != "__main__.py"
    )
    script = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    env = {**os.environ, "FOREWARN_INSTANCE": str(tmp_path / "instance")}
    result = subprocess.run(
        [sys.executable, "-c", script, *modules],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def _imports_of(path: Path) -> set[str]:
    """Every module path imported anywhere in the file, inside functions too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_redis_and_rq_are_imported_only_by_the_workers_and_the_adapters():
    """Queues are the workers' business (and the portal's and the command line's, which hand
    work to them): the domain says what is due, even inside a function it never imports them."""
    offenders = sorted(
        f"{_relative(path)}: {module}"
        for path in sources()
        if not _relative(path).startswith(("app/workers/", "app/web/", "app/cli/"))
        for module in imported_modules(path) & {"redis", "rq"}
    )
    assert offenders == []


def test_the_lift_and_the_vulnerability_life_cycle_never_reach_for_the_workers():
    """Scheduling the lift lives in app/workers/scheduling.py, which calls the lift; the lift
    never calls back (that would be a cycle between the domain and its workers)."""
    offenders = sorted(
        f"{_relative(path)}: {name}"
        for package in ("app/disclosure", "app/vulns")
        for path in (ROOT / package).rglob("*.py")
        for name in _imports_of(path)
        if name.startswith("app.workers")
    )
    assert offenders == []


def test_every_job_name_is_spelled_once_and_still_runs_under_its_old_name():
    """RQ stores a job's dotted name in Redis: every enqueuer takes it from app/workers/queue.py,
    and app.jobs.* (the names of releases before the regrouping) runs the same function."""
    import importlib

    from app.workers import queue

    spelled = sorted(
        f"{_relative(path)}: {node.value}"
        for path in sources()
        if _relative(path) != "app/workers/queue.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith(("app.workers.jobs.", "app.jobs."))
    )
    assert spelled == []
    jobs, old = importlib.import_module("app.workers.jobs"), importlib.import_module("app.jobs")
    for name in queue.JOBS:
        module, _, function = name.rpartition(".")
        assert module == "app.workers.jobs"
        assert callable(getattr(jobs, function))
        assert getattr(old, function) is getattr(jobs, function)


def _module_graph() -> dict[str, set[str]]:
    """Which of our modules each module imports (inside functions too)."""
    modules = {}
    for path in sources():
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for imported in _imports_of(path):
            while imported and imported not in modules:  # a function or class of a module
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                found.add(imported)
        graph[name] = found
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return False


def test_the_vulnerability_life_cycle_never_imports_the_registry():
    """The registry's alerts are written from a vulnerability's fields, so app/registry uses
    app/vulns, never the reverse: the embargo notices to alerted registrants are queued by the
    embargo change (app/disclosure/embargo_change.py), above both."""
    offenders = sorted(
        f"{_relative(path)}: {name}"
        for path in (ROOT / "app/vulns").rglob("*.py")
        for name in _imports_of(path)
        if name.startswith("app.registry")
    )
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "app.vulns.lifecycle",
        "app.registry.alerts",
        "app.disclosure.lift",
        "app.disclosure.embargo_change",
        "app.workers.scheduling",
        "app.workers.queue",
        "app.workers.reconcile",
    ],
)
def test_no_import_cycle_runs_through_the_embargo_and_the_lift(module):
    graph = _module_graph()
    assert module in graph
    cycle = sorted(other for other in graph[module] if _reaches(graph, other, module))
    assert cycle == []


def test_no_import_cycle_anywhere():
    """No module reaches itself back through the modules it imports, whether at the top or
    inside a function (an import inside a function that dodges a cycle is still one)."""
    graph = _module_graph()
    cycles = sorted(
        f"{module} -> {other}"
        for module, imported in graph.items()
        for other in imported
        if _reaches(graph, other, module)
    )
    assert cycles == []


def test_app_has_a_package_per_feature_and_few_loose_modules():
    """A newcomer finds a behaviour by its feature's package; only the entry points and the
    alias that keeps old job names runnable stand loose."""
    loose = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "jobs.py"]
    packages = sorted(p.name for p in (ROOT / "app").iterdir() if (p / "__init__.py").exists())
    assert len(packages) <= 13, packages
