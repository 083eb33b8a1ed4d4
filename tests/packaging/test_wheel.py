"""The distribution: build it, install it in a clean virtualenv, and use it there.

One module-scoped virtualenv is shared by the tests, in the order an operator would go:
the wheel alone (the command line and the mock, without the service's libraries), then
the ``service`` extra. Dependencies come from the package index through pip's cache.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from fiwareglancesync import __version__

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packaging
CONSOLE_SCRIPTS = ("glancesync", "glancesync-mock", "glancesync-api", "glancesync-agent")


def run(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False
    )


def checked(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = run(command, **kwargs)  # type: ignore[arg-type]
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist, then a wheel built from that sdist (so the sdist must be complete)."""
    out = tmp_path_factory.mktemp("dist")
    checked([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return out


def only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


class Installation:
    """A clean virtualenv holding the built wheel."""

    def __init__(self, folder: Path, wheel: Path):
        self.folder = folder
        self.wheel = wheel
        self.bin = folder / "bin"
        self.python = str(self.bin / "python")

    def pip_install(self, requirement: str) -> None:
        # The test virtualenv's pip installs into the clean one: no pip bootstrap there.
        pip = [sys.executable, "-m", "pip", "--python", self.python, "install", "-q"]
        checked([*pip, "--disable-pip-version-check", requirement])

    def environment(self, **extra: str) -> dict[str, str]:
        """No variable of the host's GlanceSync setup, and only this virtualenv on PATH."""
        environ = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("GLANCESYNC", "OS_", "SQLALCHEMY", "PYTHON", "VIRTUAL_ENV"))
        }
        environ["PATH"] = f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin"
        environ.update(extra)
        return environ

    def script(self, name: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        env = kwargs.pop("env", None) or self.environment()
        return run([str(self.bin / name), *args], env=env, **kwargs)  # type: ignore[arg-type]

    def python_code(self, code: str) -> str:
        done = checked([self.python, "-c", code], env=self.environment(), cwd=self.folder)
        return done.stdout.strip()


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    folder = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    installation = Installation(folder, only(dist, "*.whl"))
    installation.pip_install(str(installation.wheel))
    yield installation


def test_the_sdist_carries_what_a_source_build_needs(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    for needed in (
        "pyproject.toml",
        "setup.py",
        "CHANGELOG.rst",
        "examples/glancesync.conf",
        "doc/conf.py",
        "docker/Dockerfile",
        "fiwareglancesync/app/openapi.yaml",
        "fiwareglancesync/app/migrations/alembic.ini",
    ):
        assert needed in names, f"the sdist lacks {needed}"


def test_metadata_version_and_console_scripts(installed: Installation) -> None:
    metadata = installed.python_code(
        "import importlib.metadata as m; print(m.version('fiware-glancesync'))"
    )
    assert metadata == __version__
    assert installed.wheel.name.startswith(f"fiware_glancesync-{__version__}-")
    version = installed.script("glancesync", "--version")
    assert version.returncode == 0 and version.stdout.split()[-1] == __version__
    for name in ("glancesync", "glancesync-mock", "glancesync-agent"):
        done = installed.script(name, "--help")
        assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr


def test_the_command_line_does_not_need_the_service_libraries(installed: Installation) -> None:
    assert installed.python_code("import importlib.util as u; print(u.find_spec('flask'))") == (
        "None"
    )
    done = installed.script("glancesync-api", "--help")
    assert done.returncode == 2
    assert "pip install 'fiware-glancesync[service]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_mock_sync_of_the_bundled_example(installed: Installation, tmp_path: Path) -> None:
    example = Path(
        installed.python_code("import fiwareglancesync.examples as e; print(e.example_dir())")
    )
    assert installed.folder in example.parents, "the example must come from the installed wheel"
    loaded = installed.script("glancesync-mock", "--random", str(example / "scenario"))
    assert loaded.returncode == 0, loaded.stderr
    store = loaded.stdout.strip().removeprefix("export GLANCESYNC_MOCKPERSISTENT_PATH=")
    env = installed.environment(
        GLANCESYNC_CONFIG=str(example / "glancesync.conf"),
        GLANCESYNC_MOCKPERSISTENT_PATH=store,
    )
    before = installed.script("glancesync", "--show-status", env=env, cwd=tmp_path)
    synced = installed.script("glancesync", env=env, cwd=tmp_path)
    after = installed.script("glancesync", "--show-status", env=env, cwd=tmp_path)
    assert [before.returncode, synced.returncode, after.returncode] == [0, 0, 0], synced.stdout
    assert "pending_upload," in before.stdout
    assert "Image uploaded." in synced.stdout
    statuses = {line.split(",")[0] for line in after.stdout.splitlines()}
    assert statuses <= {"ok", "ok_stalled_checksum", "error_checksum", "error_ami"}
    assert len(after.stdout.splitlines()) == len(before.stdout.splitlines())


def test_the_service_extra_brings_a_working_service_command(
    installed: Installation, tmp_path: Path
) -> None:
    installed.pip_install(f"{installed.wheel}[service]")
    assert installed.script("glancesync-api", "--help").returncode == 0
    # The migrations are package data: upgrading a new database uses them.
    env = installed.environment(GLANCESYNCAPP_DATABASE_PATH=str(tmp_path))
    upgraded = installed.script("glancesync-api", "db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "glancesyncapi.db").is_file()
    openapi = installed.python_code(
        "import importlib.resources as r; "
        "print(r.files('fiwareglancesync.app').joinpath('openapi.yaml').is_file())"
    )
    assert openapi == "True"


def test_the_checkout_is_installed_at_the_same_version() -> None:
    # run_tests.sh installs the checkout in editable mode: its metadata must agree too.
    assert importlib.metadata.version("fiware-glancesync") == __version__
