"""Create the virtualenv that runs the integration-test cloud (Keystone, Glance, uWSGI).

Usage: ``python tests/cloud/install.py [--venv DIR]`` (default ``<repo>/.cloud-venv``).

The servers live in their own virtualenv because their dependency pins differ from the
project's. The install is idempotent: a marker written after a successful install records the
hash of ``requirements-cloud.txt`` and the Python version; when it matches, nothing is done.

Besides the packages, the install prepares migrated, empty SQLite databases for Keystone and
Glance in ``<venv>/cloud-templates``: every cloud start copies them instead of running the
migrations again, which saves several seconds of CPU per start.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
REQUIREMENTS = HERE / "requirements-cloud.txt"
DEFAULT_VENV = REPO_ROOT / ".cloud-venv"
MARKER_NAME = ".glancesync-cloud-installed"
TEMPLATES_DIR_NAME = "cloud-templates"
# Bump when the content of cloud-templates changes, so old venvs get new templates.
TEMPLATES_VERSION = 1
REQUIRED_TOOLS = ("uwsgi", "keystone-manage", "glance-manage")

Log = Callable[[str], None]


class InstallError(Exception):
    """The cloud virtualenv could not be created; the message says why in one line."""


def venv_bin(venv: Path, tool: str) -> Path:
    return venv / "bin" / tool


def templates_dir(venv: Path) -> Path:
    return venv / TEMPLATES_DIR_NAME


def fingerprint() -> dict[str, object]:
    """What the installed venv must match: requirements, interpreter, template format."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {"requirements_sha256": digest, "python": python, "templates": TEMPLATES_VERSION}


def is_up_to_date(venv: Path) -> bool:
    marker = venv / MARKER_NAME
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    tools_present = all(venv_bin(venv, tool).exists() for tool in REQUIRED_TOOLS)
    return recorded == fingerprint() and tools_present


@contextlib.contextmanager
def _install_lock(venv: Path) -> Iterator[None]:
    """Serialise concurrent installs (two test sessions started at once)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f"{venv.name}.lock"
    with lock_path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run(args: list[str | Path], log_file: Path, what: str) -> None:
    with log_file.open("a") as out:
        out.write(f"\n$ {' '.join(map(str, args))}\n")
        out.flush()
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise InstallError(f"{what} failed (exit {result.returncode}); see {log_file}")


def _python_works(venv: Path) -> bool:
    python = venv_bin(venv, "python")
    if not python.exists():
        return False
    result = subprocess.run([python, "-c", "pass"], capture_output=True, check=False)
    return result.returncode == 0


def _create_venv(venv: Path, log: Log) -> None:
    if _python_works(venv):
        return
    if venv.exists():
        # Only ever delete something that is recognisably a (broken) virtualenv.
        if not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
            raise InstallError(f"{venv} exists and is not a virtualenv; remove it or pick --venv")
        log(f"removing broken virtualenv {venv}")
        shutil.rmtree(venv)
    log(f"creating virtualenv {venv}")
    result = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"python -m venv failed: {last}")


def _pip_install(venv: Path, log_file: Path, log: Log) -> None:
    log(f"installing {REQUIREMENTS.name} (the first time takes a few minutes)")
    pip = [venv_bin(venv, "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-r", REQUIREMENTS], log_file, "pip install")
    _run(
        [venv_bin(venv, "python"), "-c", "import glance.wsgi, keystone.wsgi, pyuwsgi"],
        log_file,
        "import check of keystone/glance/pyuwsgi",
    )
    missing = [tool for tool in REQUIRED_TOOLS if not venv_bin(venv, tool).exists()]
    if missing:
        raise InstallError(f"installed venv lacks {', '.join(missing)}; see {log_file}")


def _write_db_conf(path: Path, db: Path) -> None:
    path.write_text(f"[database]\nconnection = sqlite:///{db}\n")


def build_templates(venv: Path, target: Path, log_file: Path) -> None:
    """Migrate empty Keystone and Glance SQLite databases into ``target``.

    Both migrations run at once: each is mostly Python start-up time.
    """
    target.mkdir(parents=True, exist_ok=True)
    jobs = {
        "keystone": [venv_bin(venv, "keystone-manage"), "--config-file"],
        "glance": [venv_bin(venv, "glance-manage"), "--config-file"],
    }
    running = []
    with log_file.open("a") as out:
        for name, command in jobs.items():
            conf = target / f"{name}-db.conf"
            _write_db_conf(conf, target / f"{name}.db")
            args = [*command, conf, "db_sync"]
            out.write(f"\n$ {' '.join(map(str, args))}\n")
            out.flush()
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
            running.append((name, proc))
        failed = [name for name, proc in running if proc.wait() != 0]
    if failed:
        raise InstallError(f"{' and '.join(failed)} db_sync failed; see {log_file}")


def _install_templates(venv: Path, log_file: Path, log: Log) -> None:
    log("migrating template databases for Keystone and Glance")
    final = templates_dir(venv)
    staging = Path(tempfile.mkdtemp(prefix="templates-", dir=venv))
    try:
        build_templates(venv, staging, log_file)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_venv(venv: Path = DEFAULT_VENV, log: Log = print) -> Path:
    """Make ``venv`` a complete cloud virtualenv; fast when it already is one."""
    venv = venv.resolve()
    if is_up_to_date(venv):
        log(f"cloud venv up to date: {venv}")
        return venv
    with _install_lock(venv):
        if is_up_to_date(venv):  # another process finished it while we waited
            return venv
        _create_venv(venv, log)
        marker = venv / MARKER_NAME
        marker.unlink(missing_ok=True)  # an interrupted install must not look complete
        log_file = venv / "install.log"
        _pip_install(venv, log_file, log)
        _install_templates(venv, log_file, log)
        marker.write_text(json.dumps(fingerprint()))
        log(f"cloud venv ready: {venv}")
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="virtualenv directory")
    args = parser.parse_args(argv)
    try:
        ensure_venv(args.venv, log=lambda line: print(f"install.py: {line}", flush=True))
    except InstallError as error:
        print(f"install.py: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"install.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
