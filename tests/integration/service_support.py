"""The REST service as a real process: ``run.py gunicornserver`` against the test cloud.

:class:`LiveService` writes the service's settings (its own Keystone credential: Keystone
A's admin), upgrades the database with ``run.py db upgrade``, starts gunicorn with three
workers on a free port of 127.0.0.1, and stops it (the master, by PID) at the end. Tests
talk to it with ``requests`` and real Keystone tokens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from sync_cloud_support import CloudSync, environment_without_openstack

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
WAIT = 90.0  # seconds a test waits for a task to end before it fails


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceError(RuntimeError):
    pass


class LiveService:
    """``run.py gunicornserver -w 3`` in ``workdir``, for one test module."""

    def __init__(
        self,
        cloud: Any,
        workdir: Path,
        lease_seconds: int = 6,
        master_cache_seconds: float | None = None,
        extra_settings: str = "",
    ):
        """``extra_settings``: more ``[glancesync]`` lines, ``OPTION = value`` each."""
        self.cloud = cloud
        self.workdir = workdir
        self.sync = CloudSync(cloud, workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = workdir / "glancesyncapi.db"
        self.log = workdir / "glancesync-api.log"
        self.settings = workdir / "fiware-glancesync.cfg"
        self.process: subprocess.Popen[bytes] | None = None
        keystone = cloud.keystones["A"]
        self.settings.write_text(
            "[openstack]\n"
            f"KEYSTONE_URL = {keystone.auth_url}\n"
            f"ADM_USER = {keystone.admin_user}\n"
            f"ADM_PASS = {keystone.admin_password}\n"
            f"ADM_TENANT_NAME = {keystone.admin_project}\n"
            "USER_DOMAIN_NAME = Default\n"
            "[glancesync]\n"
            f"TASK_LEASE_SECONDS = {lease_seconds}\n"
            + (
                ""
                if master_cache_seconds is None
                else f"MASTER_CACHE_SECONDS = {master_cache_seconds}\n"
            )
            + extra_settings
            + "[gunicorn]\nLOGLEVEL = debug\n"
        )

    def environ(self) -> dict[str, str]:
        environ = environment_without_openstack()
        for name in list(environ):
            if name.startswith(("GLANCESYNC", "SQLALCHEMY")):
                del environ[name]
        environ.update(
            GLANCESYNC_SETTINGS_FILE=str(self.settings),
            GLANCESYNC_CONFIG=str(self.sync.config_path),
            GLANCESYNCAPP_DATABASE_PATH=str(self.workdir),
        )
        return environ

    def run_py(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "run.py"), *argv],
            cwd=self.workdir,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> LiveService:
        upgrade = self.run_py("db", "upgrade")
        if upgrade.returncode != 0:
            raise ServiceError(f"run.py db upgrade failed: {upgrade.stderr}")
        argv = ["gunicornserver", "-H", "127.0.0.1", "-p", str(self.port), "-w", "3"]
        self.output = open(self.workdir / "gunicorn.out", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), *argv],
            cwd=self.workdir,
            env=self.environ(),
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while len(self.worker_pids()) < 3 or not self._answers():
            if self.process is None or self.process.poll() is not None:
                raise ServiceError(f"gunicorn exited: {self.output_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the service did not start: {self.output_text()}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            return requests.get(self.url + "/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def output_text(self) -> str:
        path = self.workdir / "gunicorn.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the master we started."""
        if self.process is None:
            return []
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    children.append(int(entry.name))
        return sorted(children)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "output", None) is not None:
            self.output.close()

    # ------------------------------------------------------------------- HTTP

    def token(self, user: str | None = None, keystone: str = "A") -> str:
        return str(self.cloud.keystone_session(keystone, user=user).get_token())

    def call(self, method: str, path: str, token: str | None, **options: Any) -> Any:
        headers = {"X-Auth-Token": token} if token is not None else {}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **options)

    def wait_task(self, region: str, task_id: str, token: str) -> dict[str, Any]:
        """Poll the task until it is no longer syncing."""
        deadline = time.monotonic() + WAIT
        while True:
            response = self.call("GET", f"/regions/{region}/tasks/{task_id}", token)
            assert response.status_code == 200, response.text
            task = response.json()
            if task["status"] != "syncing":
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still syncing after {WAIT} s")
            time.sleep(0.3)

    # ------------------------------------------------------------------- database

    def db_rows(self, query: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as connection:
            return list(connection.execute(query, parameters))

    def integrity(self) -> str:
        return str(self.db_rows("PRAGMA integrity_check")[0][0])

    def wait_idle(self) -> None:
        """Until no task is syncing (so a test does not leave a sync running)."""
        deadline = time.monotonic() + WAIT
        while self.db_rows("SELECT count(*) FROM task WHERE status = 'syncing'")[0][0]:
            if time.monotonic() > deadline:
                raise AssertionError("syncs still running")
            time.sleep(0.3)


def owner_pid(owner: str) -> int:
    """The PID in a task's owner, ``host/pid/random``."""
    return int(owner.split("/")[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
