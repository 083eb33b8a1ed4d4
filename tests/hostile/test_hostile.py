"""Run the hostile-input corpus (``cases.py``) and the hostile store paths.

Every case runs sync.py or the loader as a child process under a memory limit
(``RLIMIT_AS``), a CPU limit and a wall-clock timeout, in a sandbox with its own home
folder. The child must end in time, exit with one of the statuses the case allows,
print no traceback, run none of the injected code, and leave every file outside the
mock store as it was.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cases import CASES, PWNED, USAGE, Case

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 768 * 1024 * 1024  # bytes of address space: ~25 times what a run needs
CPU_SECONDS = 60
WALL_SECONDS = 120
STORE_MARKER = ".glancesync-mock-store"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)


def snapshot(root: Path, skip: Callable[[Path], bool]) -> dict[str, str]:
    """Every file under ``root`` (but the skipped ones) and a hash of its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not skip(path):
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class Sandbox:
    """A home folder with something precious in it, a working directory, a store."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.store = root / "store"
        self.scenario = root / "scenario"
        _write(self.home, {"precious.txt": "years of work\n", ".bashrc": "# mine\n"})
        self.work.mkdir()

    def environ(self, config: Path) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "GLANCESYNC_CONFIG": str(config),
            "GLANCESYNC_MOCKPERSISTENT_PATH": str(self.store),
        }

    def run(self, command: list[str], config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.work,
            env=self.environ(config),
            preexec_fn=_limits,
            capture_output=True,
            text=True,
            timeout=WALL_SECONDS,
            check=False,
        )

    def outside_store(self, allow_outputs: bool) -> dict[str, str]:
        def skip(path: Path) -> bool:
            if self.store in path.parents:
                return True
            first = path.relative_to(self.root).parts
            return allow_outputs and first[0] == "work" and first[1].startswith("backup_glance_")

        return snapshot(self.root, skip)


def command_for(case: Case, sandbox: Sandbox) -> list[str]:
    if case.command == "load":
        return [
            sys.executable,
            "-m",
            "fiwareglancesync.mock",
            "--path",
            str(sandbox.store),
            str(sandbox.scenario),
        ]
    return [sys.executable, str(ROOT / "sync.py"), *case.argv]


def prepare(case: Case, sandbox: Sandbox) -> Path:
    config = sandbox.root / "glancesync.conf"
    config.write_bytes(case.config.encode() if isinstance(case.config, str) else case.config)
    if case.command == "load":
        _write(sandbox.scenario, case.files)
    else:
        _write(sandbox.store, {**case.files, STORE_MARKER: "a store\n"})
    return config


def check_clean_end(done: subprocess.CompletedProcess[str], sandbox: Sandbox) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-2000:]
    assert not list(sandbox.root.rglob(PWNED)), "injected code ran"
    return output


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    config = prepare(case, sandbox)
    allow_outputs = "--make-backup" in case.argv
    before = sandbox.outside_store(allow_outputs)
    done = sandbox.run(command_for(case, sandbox), config)
    output = check_clean_end(done, sandbox)
    assert done.returncode in case.statuses, output[-2000:]
    if case.message:
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1, output[-2000:]
        assert case.message in errors[0], errors[0]
    assert sandbox.outside_store(allow_outputs) == before
    if case.command == "load" and done.returncode != 0:
        assert not sandbox.store.exists(), "a refused load wrote a store"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) + len(STORE_PATHS) >= 30


# --------------------------------------------------------------------------- store paths


def _home(sandbox: Sandbox) -> Path:
    return sandbox.home


def _scenario_itself(sandbox: Sandbox) -> Path:
    return sandbox.scenario


def _a_file(sandbox: Sandbox) -> Path:
    return sandbox.home / "precious.txt"


def _marked_with_foreign_file(sandbox: Sandbox) -> Path:
    folder = sandbox.root / "marked"
    _write(folder, {STORE_MARKER: "", "backup_X.csv": "", "diary.txt": "mine"})
    return folder


def _parent_of_scenario(sandbox: Sandbox) -> Path:
    return sandbox.root


STORE_PATHS: dict[str, tuple[Callable[[Sandbox], Path], str]] = {
    "the home folder": (_home, "is not a mock store made by glancesync-mock"),
    "the scenario folder": (_scenario_itself, "is the scenario folder itself"),
    "a file": (_a_file, "exists and is not a directory"),
    "a store holding a foreign file": (_marked_with_foreign_file, "which the store did not make"),
    "the scenario's parent": (_parent_of_scenario, "is inside the store"),
}


@pytest.mark.parametrize("name", STORE_PATHS)
@pytest.mark.parametrize("confirm", [[], ["--confirm"]])
def test_hostile_store_paths_are_refused_and_left_alone(
    name: str, confirm: list[str], tmp_path: Path
) -> None:
    sandbox = Sandbox(tmp_path)
    _write(sandbox.scenario, {"backup_Valladolid.csv": "", "backup_Leon.csv": ""})
    where, message = STORE_PATHS[name]
    path = where(sandbox)
    before = snapshot(sandbox.root, lambda _: False)
    command = [
        sys.executable,
        "-m",
        "fiwareglancesync.mock",
        "--path",
        str(path),
        *confirm,
        str(sandbox.scenario),
    ]
    done = sandbox.run(command, sandbox.root / "none.conf")
    output = check_clean_end(done, sandbox)
    assert done.returncode == USAGE, output
    assert message in output
    assert snapshot(sandbox.root, lambda _: False) == before
