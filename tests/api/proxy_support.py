"""The service as real processes: gunicorn on the mock (noauth), and nginx in front of it.

:func:`gunicorn` starts ``run.py gunicornserver`` on a TCP port of 127.0.0.1 or on a
unix socket; :func:`nginx` starts Debian's nginx in the foreground with the shipped
``docker/nginx.conf``, rewritten only where a test must differ (its files under the
test's folder, a free port of 127.0.0.1, the socket of the test's gunicorn). Both are
stopped by PID at the end. :func:`half_requests` opens the silent clients.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from test_api_noauth import free_port, run_py, service_environ

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "docker" / "nginx.conf"
SHIPPED_SOCKET = "/run/glancesync/api.sock"
SHIPPED_LISTEN = "listen 8080;"
START_TIMEOUT = 60.0
HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n"  # the headers never end


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket: to ask gunicorn directly when it listens on one."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


@dataclass
class Endpoint:
    """Where a client reaches the service: a TCP port of 127.0.0.1 or a unix socket."""

    port: int | None = None
    socket_path: str | None = None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return UnixHTTPConnection(self.socket_path, timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        """One request on a new connection: (status, body); raises on a timeout."""
        connection = self.connection(timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def open(self) -> socket.socket:
        if self.socket_path is not None:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(self.socket_path)
            return client
        return socket.create_connection(("127.0.0.1", self.port))


def _wait_answering(
    endpoint: Endpoint,
    process: subprocess.Popen[bytes],
    output: Path,
    statuses: tuple[int, ...] | None = None,
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if endpoint.get("/", timeout=2)[0] in (statuses or (200,)):
                return
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}: {output.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not answering: {output.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def gunicorn(workdir: Path, unix_socket: bool, workers: int | None = None) -> Iterator[Endpoint]:
    """``run.py gunicornserver`` (noauth, the example on the mock) until the block ends."""
    environ = service_environ(workdir)
    upgraded = run_py(environ, workdir, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    if unix_socket:
        endpoint = Endpoint(socket_path=str(workdir / "api.sock"))
        where = ["--socket", str(endpoint.socket_path)]
    else:
        endpoint = Endpoint(port=free_port())
        where = ["-H", "127.0.0.1", "-p", str(endpoint.port)]
    argv = [sys.executable, str(REPO / "run.py"), "gunicornserver", *where]
    if workers is not None:
        argv += ["-w", str(workers)]
    output = workdir / "gunicorn.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            argv, cwd=workdir, env=environ, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait_answering(endpoint, process, output)
        yield endpoint
    finally:
        _stop(process)


def nginx_binary() -> str | None:
    """Debian's nginx: on PATH, or in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def nginx_config(workdir: Path, port: int, socket_path: str) -> str:
    """The shipped configuration with this test's port, socket and files."""
    text = NGINX_CONF.read_text()
    for shipped in (SHIPPED_SOCKET, SHIPPED_LISTEN, "/tmp/"):
        assert shipped in text, f"{NGINX_CONF} no longer holds {shipped!r}"
    # pid file, temporary folders: under the test's folder, not the system's.
    text = text.replace("/tmp/", f"{workdir}/")
    text = text.replace(SHIPPED_SOCKET, socket_path)
    text = text.replace(SHIPPED_LISTEN, f"listen 127.0.0.1:{port};")
    if os.geteuid() == 0:
        # Root's nginx would run its workers as nobody, who cannot enter the test's folder.
        text = "user root;\n" + text
    return text


@contextlib.contextmanager
def nginx(workdir: Path, upstream: Endpoint, ready: bool = True) -> Iterator[Endpoint]:
    """nginx in the foreground on 127.0.0.1, in front of ``upstream``'s unix socket.

    With ``ready``, until ``GET /`` answers 200 through it; else until it answers at all.
    """
    binary = nginx_binary()
    assert binary, "nginx is not installed (run_tests.sh installs Debian's nginx)"
    assert upstream.socket_path is not None
    workdir.mkdir(parents=True, exist_ok=True)
    endpoint = Endpoint(port=free_port())
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(workdir, endpoint.port or 0, upstream.socket_path))
    output = workdir / "nginx.out"
    argv = [binary, "-p", f"{workdir}/", "-e", str(workdir / "error.log"), "-c", str(config)]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*argv, "-g", "daemon off;"], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait_answering(endpoint, process, output, None if ready else (200, 502))
        yield endpoint
    finally:
        _stop(process, signal.SIGQUIT)  # nginx's graceful stop


def exchange(endpoint: Endpoint, data: bytes, timeout: float) -> bytes:
    """Send ``data`` raw, then read everything until the server closes."""
    client = endpoint.open()
    try:
        client.settimeout(timeout)
        client.sendall(data)
        received = b""
        while chunk := client.recv(65536):  # a timeout here fails the caller
            received += chunk
        return received
    finally:
        client.close()


@contextlib.contextmanager
def half_requests(endpoint: Endpoint, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send half a request, then nothing."""
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            client = endpoint.open()
            clients.append(client)
            client.sendall(HALF_REQUEST)
        yield clients
    finally:
        for client in clients:
            client.close()
