"""The service's modules import one another in one direction, and do nothing on import."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import fiwareglancesync.app.cli as service_cli

APP = Path(__file__).resolve().parents[2] / "fiwareglancesync" / "app"
PACKAGE = "fiwareglancesync.app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP).with_suffix("").parts
    return ".".join((PACKAGE, *parts)).removesuffix(".__init__")


def app_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in APP.rglob("*.py")
        if "migrations" not in path.relative_to(APP).parts
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def test_no_import_circle_in_the_service() -> None:
    modules = app_modules()
    graph = {name: imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert "fiwareglancesync.app.state" in graph["fiwareglancesync.app.api.regions"]
    assert cycles(graph) == []


def test_the_service_command_takes_no_time_stamp_on_import() -> None:
    stamps = [name for name, value in vars(service_cli).items() if isinstance(value, dt.datetime)]
    assert stamps == []


def test_run_py_imports_no_prometheus_client_before_gunicorn_starts() -> None:
    """prometheus_client chooses, at its first import, whether the workers' figures go to
    the multiprocess directory: run.py must set that up before anything imports it."""
    import subprocess
    import sys

    probe = (
        "import sys, fiwareglancesync.app.cli, fiwareglancesync.app;"
        "sys.exit('prometheus_client' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
