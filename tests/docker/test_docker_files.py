"""What can be checked of docker/ without a Docker engine.

The Dockerfile's COPY sources must exist and be inside the build context; the entrypoint
must be executable and must really upgrade a database and start gunicorn, which it does
here on the host, on 127.0.0.1, against a temporary SQLite database and the mock cloud.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fiwareglancesync import __version__

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"
START_TIMEOUT = 40.0  # seconds for the migrations and gunicorn to answer
STOP_TIMEOUT = 30.0


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append((keyword.upper(), arguments.strip()))
    return found


def copy_sources(arguments: str) -> list[str] | None:
    """The context paths a COPY/ADD reads; None when it copies from another stage."""
    words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    flags = [word for word in words if word.startswith("--")]
    if any(flag.startswith("--from=") for flag in flags):
        return None
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1]


def ignore_patterns() -> list[str]:
    lines = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(Path(prefix).name, pattern.removeprefix("**/"))
        for prefix in prefixes
        for pattern in patterns
    )


def test_every_file_the_dockerfile_copies_exists_in_the_build_context() -> None:
    patterns = ignore_patterns()
    checked = []
    for keyword, arguments in instructions(DOCKERFILE):
        if keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(arguments) or []:
            matches = list(ROOT.glob(source))
            assert matches, f"{keyword} {source}: nothing in the build context matches"
            assert not ignored(source, patterns), f"{source} is excluded by the dockerignore"
            checked.append(source)
    assert "docker/entrypoint.sh" in checked and "fiwareglancesync" in checked


def test_the_image_runs_the_service_through_the_entrypoint_as_a_non_root_user() -> None:
    found = instructions(DOCKERFILE)
    bases = [arguments for keyword, arguments in found if keyword == "FROM"]
    assert bases and all(base.startswith("${PYTHON_IMAGE}") for base in bases)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    users = [arguments for keyword, arguments in found if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = [json.loads(arguments) for keyword, arguments in found if keyword == "ENTRYPOINT"]
    assert entrypoint[-1] == ["glancesync-entrypoint"]
    assert any(
        keyword == "COPY" and arguments.endswith("/usr/local/bin/glancesync-entrypoint")
        for keyword, arguments in found
    )
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable"
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_the_compose_example_refers_to_files_that_exist_and_settings_that_load() -> None:
    from fiwareglancesync.app.settings import load_settings
    from fiwareglancesync.config import load_config

    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    build = compose["services"]["api"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"compose mounts missing {source}"
    example = DOCKER / "example"
    config = load_config({"GLANCESYNC_CONFIG": str(example / "glancesync.conf")})
    assert config.master_region
    settings = load_settings({"GLANCESYNC_SETTINGS_FILE": str(example / "fiware-glancesync.cfg")})
    assert settings.keystone.missing() == []


# --------------------------------------------------------------------------- the entrypoint


def entrypoint_environment(tmp_path: Path) -> dict[str, str]:
    """The host's environment less anything GlanceSync or OpenStack would read."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GLANCESYNC", "OS_", "SQLALCHEMY"))
    }
    scripts = Path(sys.executable).parent  # glancesync-api of the test virtualenv
    environ.update(
        PATH=f"{scripts}{os.pathsep}{environ.get('PATH', '')}",
        HOME=str(tmp_path),  # gunicorn keeps its control socket under $HOME
        GLANCESYNCAPP_DATABASE_PATH=str(tmp_path),
        GLANCESYNC_LOGGING_SETTINGS_FILE=str(DOCKER / "logging.cfg"),
    )
    return environ


def test_upgrade_creates_the_schema_and_stops(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "upgrade"],
        cwd=tmp_path,
        env=entrypoint_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "upgrading the database schema" in done.stderr
    with sqlite3.connect(tmp_path / "glancesyncapi.db") as database:
        (revision,) = database.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master")}
    assert revision and "task" in {table.lower() for table in tables}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mock_store(tmp_path: Path) -> Path:
    store = tmp_path / "mock"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fiwareglancesync.mock",
            "--path",
            str(store),
            str(ROOT / "examples" / "scenario"),
        ],
        check=True,
        capture_output=True,
    )
    return store


def get_json(url: str, deadline: float, process: subprocess.Popen[str]) -> dict[str, object]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.load(answer)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The entrypoint's default command, serving on a free port of 127.0.0.1."""
    port = free_port()
    environ = entrypoint_environment(tmp_path)
    environ.update(
        GLANCESYNC_HOST="127.0.0.1",
        GLANCESYNC_PORT=str(port),
        GLANCESYNC_WORKERS="1",
        GLANCESYNC_CONFIG=str(ROOT / "examples" / "glancesync.conf"),
        GLANCESYNC_MOCKPERSISTENT_PATH=str(mock_store(tmp_path)),
        # Nothing listens there: `GET /` needs no token, so Keystone is never asked.
        OS_AUTH_URL="http://127.0.0.1:9/v3",
        OS_USERNAME="glancesync",
        OS_PASSWORD="not-a-real-password",
        OS_PROJECT_NAME="service",
    )
    log = open(tmp_path / "entrypoint.log", "w+", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], cwd=tmp_path, env=environ, stdout=log, stderr=log, text=True
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the entrypoint exec'd gunicorn: same PID
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_serve_upgrades_then_gunicorn_answers_with_the_package_version(
    served: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    process, port = served
    deadline = time.monotonic() + START_TIMEOUT
    try:
        document = get_json(f"http://127.0.0.1:{port}/", deadline, process)
    except OSError:
        pytest.fail("no answer; entrypoint log:\n" + (tmp_path / "entrypoint.log").read_text())
    assert document["version"] == __version__
    assert document["id"] == f"v{__version__}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT) == 0
    log = (tmp_path / "entrypoint.log").read_text()
    assert log.index("upgrading the database schema") < log.index("starting gunicorn")
    assert (tmp_path / "glancesyncapi.db").is_file()


# --------------------------------------------------------------------------- the proxy

HEALTHCHECK = DOCKER / "healthcheck.py"


def test_compose_puts_nginx_in_front_of_gunicorns_socket() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    api, proxy = compose["services"]["api"], compose["services"]["proxy"]
    assert "ports" not in api, "only the proxy may publish a port"
    assert proxy["ports"] == ["127.0.0.1:8080:8080"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    socket_path = api["environment"]["GLANCESYNC_SOCKET"]
    assert f"server unix:{socket_path};" in (DOCKER / "nginx.conf").read_text()
    # The socket's folder is a volume that the service and the proxy alone share.
    folder = str(Path(socket_path).parent)
    sharing = {
        name
        for name, service in compose["services"].items()
        for volume in service.get("volumes", [])
        if volume.split(":")[1] == folder
    }
    assert sharing == {"api", "proxy"}
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    # The image makes that folder, owned by its user, so the volume starts out so too.
    assert f"install -d -o glancesync -g glancesync -m 0755 {folder}" in DOCKERFILE.read_text()


def test_the_healthcheck_is_the_shipped_script() -> None:
    found = instructions(DOCKERFILE)
    assert ("COPY", "docker/healthcheck.py /usr/local/bin/glancesync-healthcheck") in found
    (check,) = [arguments for keyword, arguments in found if keyword == "HEALTHCHECK"]
    assert check.endswith('CMD ["glancesync-healthcheck"]')
    assert os.access(HEALTHCHECK, os.X_OK), "docker/healthcheck.py must be executable"


def healthcheck(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=environ, capture_output=True, text=True, timeout=30
    )


def test_serve_listens_on_the_socket_and_the_healthcheck_asks_there(tmp_path: Path) -> None:
    socket_path = tmp_path / "run" / "api.sock"
    socket_path.parent.mkdir()
    environ = entrypoint_environment(tmp_path)
    environ.update(
        GLANCESYNC_SOCKET=str(socket_path),
        GLANCESYNC_HOST="0.0.0.0",  # as the image sets it: the socket wins, nothing on TCP
        GLANCESYNC_WORKERS="1",
        GLANCESYNC_CONFIG=str(ROOT / "examples" / "glancesync.conf"),
        GLANCESYNC_MOCKPERSISTENT_PATH=str(mock_store(tmp_path)),
        OS_AUTH_URL="http://127.0.0.1:9/v3",
        OS_USERNAME="glancesync",
        OS_PASSWORD="not-a-real-password",
        OS_PROJECT_NAME="service",
    )
    refused = healthcheck(environ)  # nothing listens yet
    assert refused.returncode == 1 and refused.stderr.startswith("unhealthy: "), refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    log_path = tmp_path / "entrypoint.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT)], cwd=tmp_path, env=environ, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (done := healthcheck(environ)).returncode != 0:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text() + done.stderr
            time.sleep(0.25)
        assert f"--socket {socket_path}" in log_path.read_text()
        assert "--host" not in log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_agent_command_execs_glancesync_agent(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "agent", "--version"],
        cwd=tmp_path,
        env=entrypoint_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("glancesync-agent ")
    assert "starting the agent: --version" in done.stderr
