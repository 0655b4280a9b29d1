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
