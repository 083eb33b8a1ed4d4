"""A private PostgreSQL server for the tests, installed and started when none is given.

``GLANCESYNC_TEST_POSTGRESQL_URL`` (a SQLAlchemy URL of a server the tests may create
databases on) skips all of this. Otherwise: find Debian's PostgreSQL binaries, install
the ``postgresql`` package with apt-get if they are missing (root only), create a
throw-away cluster, serve it on 127.0.0.1 on a free port, and stop and delete it at the
end. PostgreSQL refuses to run as root, so as root the cluster belongs to ``postgres``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

URL_VARIABLE = "GLANCESYNC_TEST_POSTGRESQL_URL"
SUPERUSER = "glancesync"
START_TIMEOUT = 60.0


class PostgresUnavailable(Exception):
    """PostgreSQL could not be installed or started; the message says why."""


def _bindir() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
        reverse=True,
    )
    if candidates:
        return candidates[0].parent
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def _install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable(
            f"PostgreSQL is not installed and cannot be installed here (not root, or no "
            f"apt-get): install Debian's postgresql package or set {URL_VARIABLE}"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ):
        done = subprocess.run(command, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(command)} failed: {done.stderr[-2000:]}")


def find_or_install() -> Path:
    bindir = _bindir()
    if bindir is None:
        _install()
        bindir = _bindir()
    if bindir is None:
        raise PostgresUnavailable("the postgresql package is installed but has no server binary")
    return bindir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running cluster; ``database()`` gives a fresh, empty database per test."""

    base_url: str  # without a database name
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None

    def url(self, database: str) -> str:
        return f"{self.base_url}/{database}"

    def _admin(self):
        import psycopg

        return psycopg.connect(self.url("postgres").replace("+psycopg", ""), autocommit=True)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _run_as() -> str | None:
    """The user that runs the cluster: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root, but there is no postgres user") from None
    return "postgres"


def _wait_ready(server: PostgresServer, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process is not None and server.process.poll() is not None:
            raise PostgresUnavailable(f"postgres exited: {log.read_text()[-2000:]}")
        try:
            with server._admin():
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                message = f"postgres did not start: {log.read_text()[-2000:]}"
                raise PostgresUnavailable(message) from None
            time.sleep(0.2)


def start_private_server() -> PostgresServer:
    bindir = find_or_install()
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="glancesync-pg-"))
    data = directory / "data"
    if user:
        shutil.chown(directory, user)
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
    done = subprocess.run(
        [*initdb, "-E", "UTF8", "--no-sync"], user=user, capture_output=True, text=True
    )
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {done.stderr[-2000:]}")
    port = _free_port()
    log = directory / "postgres.log"
    # Durability is not what these tests are about: skip the fsyncs.
    command = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    command += ["-k", str(directory), "-c", "fsync=off", "-c", "synchronous_commit=off"]
    command += ["-c", "full_page_writes=off"]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, user=user, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = PostgresServer(
        f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}", process, directory
    )
    try:
        _wait_ready(server, log)
    except BaseException:
        server.stop()
        raise
    return server


def server_from_environment() -> PostgresServer | None:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return None
    base, _, _database = url.rstrip("/").rpartition("/")
    return PostgresServer(base)
