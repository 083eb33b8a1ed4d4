"""AUTH_STRATEGY = noauth: the service on the mock without a Keystone, through real HTTP.

``run.py gunicornserver`` is started as a user would start it, on the bundled example
loaded into a mock store; every endpoint is called with no token. The refusals (a real
cloud, an address other than loopback) are start-up errors, exit 2, one line each.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples"
WARNING_LINE = (
    "AUTH_STRATEGY = noauth: no token is checked and every caller is an admin; "
    "for trying the service on the mock from this host only"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_environ(tmp_path: Path, mock: bool = True) -> dict[str, str]:
    settings = tmp_path / "fiware-glancesync.cfg"
    settings.write_text("[glancesync]\nAUTH_STRATEGY = noauth\n")
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OS_", "GLANCESYNC", "SQLALCHEMY"))
    }
    environ.update(
        GLANCESYNC_SETTINGS_FILE=str(settings),
        GLANCESYNC_CONFIG=str(EXAMPLE / "glancesync.conf"),
        GLANCESYNCAPP_DATABASE_PATH=str(tmp_path),
    )
    if mock:
        store = tmp_path / "mock"
        loaded = subprocess.run(
            [
                sys.executable,
                "-m",
                "fiwareglancesync.mock",
                "--path",
                str(store),
                str(EXAMPLE / "scenario"),
            ],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )
        assert loaded.returncode == 0, loaded.stderr
        environ["GLANCESYNC_MOCKPERSISTENT_PATH"] = str(store)
    return environ


def run_py(environ: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *argv],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def noauth_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    environ = service_environ(tmp_path)
    upgraded = run_py(environ, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    port = free_port()
    output = tmp_path / "gunicorn.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "run.py"),
                "gunicornserver",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            cwd=tmp_path,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url + "/", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert process.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.2)
            yield url, tmp_path
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_every_endpoint_answers_without_a_token(noauth_service: tuple[str, Path]) -> None:
    url, workdir = noauth_service
    root = requests.get(url + "/", timeout=30)
    assert root.headers["X-GlanceSync-Auth-Strategy"] == "noauth"
    assert WARNING_LINE in root.headers["Warning"]

    status = requests.get(url + "/regions/Leon", timeout=30)
    assert status.status_code == 200, status.text
    assert status.headers["X-GlanceSync-Auth-Strategy"] == "noauth"
    names = {image["name"] for image in status.json()["images"]}
    assert names and all(image["status"] for image in status.json()["images"])

    started = requests.post(url + "/regions/Leon", timeout=30)
    assert started.status_code == 200, started.text
    task_id = started.json()["taskId"]
    deadline = time.monotonic() + 60
    while True:
        task = requests.get(f"{url}/regions/Leon/tasks/{task_id}", timeout=30)
        assert task.status_code == 200, task.text
        if task.json()["status"] != "syncing":
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert task.json()["status"] == "synced", task.text
    after = requests.get(url + "/regions/Leon", timeout=30).json()["images"]
    assert {image["status"] for image in after} <= {"ok", "ok_stalled", "error_ami", "pending_ami"}
    deleted = requests.delete(f"{url}/regions/Leon/tasks/{task_id}", timeout=30)
    assert deleted.status_code == 200 and deleted.headers["X-GlanceSync-Auth-Strategy"] == "noauth"
    missing = requests.get(url + "/regions/Nowhere", timeout=30)
    assert missing.headers["X-GlanceSync-Auth-Strategy"] == "noauth"

    log = (workdir / "glancesync-api.log").read_text()
    assert f"WARNING {WARNING_LINE}" in log or WARNING_LINE in log


def test_noauth_is_refused_on_a_real_cloud(tmp_path: Path) -> None:
    environ = service_environ(tmp_path, mock=False)
    done = run_py(environ, tmp_path, "gunicornserver", "-H", "127.0.0.1", "-p", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ERROR: [glancesync] AUTH_STRATEGY = noauth works only on the mock "
        "(set GLANCESYNC_MOCKPERSISTENT_PATH); a real cloud needs keystone"
    ]


@pytest.mark.parametrize("command", ["gunicornserver", "runserver"])
def test_noauth_is_refused_on_an_address_others_reach(tmp_path: Path, command: str) -> None:
    environ = service_environ(tmp_path)
    # Refused before anything is bound: nothing listens on 0.0.0.0, even for a moment.
    done = run_py(environ, tmp_path, command, "-H", "0.0.0.0", "-p", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ERROR: [glancesync] AUTH_STRATEGY = noauth works only on a loopback address "
        "(127.0.0.1, ::1, localhost), not 0.0.0.0"
    ]


def test_a_bad_auth_strategy_is_a_start_up_error(tmp_path: Path) -> None:
    environ = service_environ(tmp_path)
    Path(environ["GLANCESYNC_SETTINGS_FILE"]).write_text("[glancesync]\nAUTH_STRATEGY = none\n")
    done = run_py(environ, tmp_path, "gunicornserver", "-p", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ERROR: [glancesync] AUTH_STRATEGY must be one of keystone, noauth"
    ]
