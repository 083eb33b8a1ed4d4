"""The shipped reverse proxy: nginx (docker/nginx.conf) in front of gunicorn's unix socket.

Real processes and real sockets: ``run.py gunicornserver --socket`` on the example in a
mock store (noauth), Debian's nginx in the foreground on a free port of 127.0.0.1 with
the shipped configuration. Forty clients send half a request each and then nothing;
the service must still answer others. The client timeout is only the failure bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_support import Endpoint, gunicorn, half_requests, nginx

SILENT_CLIENTS = 40
CLIENT_TIMEOUT = 8.0  # seconds: far above an answer's few milliseconds, below nginx's 10 s


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Endpoint, Endpoint]]:
    """(nginx, gunicorn's socket) with the shipped defaults (3 workers x 4 threads)."""
    with (
        gunicorn(tmp_path, unix_socket=True) as upstream,
        nginx(tmp_path / "nginx", upstream) as front,
    ):
        yield front, upstream


def test_silent_half_requests_leave_the_service_answering(
    proxied: tuple[Endpoint, Endpoint],
) -> None:
    front, _ = proxied
    with half_requests(front, SILENT_CLIENTS):
        # More silent clients than gunicorn has threads (12), several rounds.
        for _ in range(3):
            status, body = front.get("/", timeout=CLIENT_TIMEOUT)
            assert status == 200, body
            assert "version" in json.loads(body)
            status, body = front.get("/regions/Leon", timeout=CLIENT_TIMEOUT)
            assert status == 200, body
            assert json.loads(body)["images"]


def test_the_proxy_passes_errors_and_metrics_through(proxied: tuple[Endpoint, Endpoint]) -> None:
    front, upstream = proxied
    status, body = front.get("/regions/Nowhere", timeout=CLIENT_TIMEOUT)
    assert status == 410, body  # the documented answer for an unknown region
    assert json.loads(body) == json.loads(upstream.get("/regions/Nowhere", CLIENT_TIMEOUT)[1])
    status, body = front.get("/metrics", timeout=CLIENT_TIMEOUT)  # allowed from 127.0.0.1
    assert status == 200 and b"glancesync" in body


def test_a_client_that_never_ends_its_headers_is_closed_by_nginx(
    proxied: tuple[Endpoint, Endpoint],
) -> None:
    front, _ = proxied
    with half_requests(front, 1) as (client,):
        client.settimeout(60)  # a bound far above client_header_timeout (10 s)
        received = b""
        while chunk := client.recv(1024):  # a timeout here fails the test
            received += chunk
    # nginx closes the connection (it may say 408 first); gunicorn never saw it.
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received
