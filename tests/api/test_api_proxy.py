"""The shipped reverse proxy: nginx (docker/nginx.conf) in front of gunicorn's unix socket.

Real processes and real sockets: ``run.py gunicornserver --socket`` on the example in a
mock store (noauth), Debian's nginx in the foreground on a free port of 127.0.0.1 with
the shipped configuration. Forty clients send half a request each and then nothing;
the service must still answer others. What nginx refuses itself (a bad chunk, a NUL, a
long URI, a large body, a service that is down) is one answer, JSON as the API's own.
The client timeout is only the failure bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_support import Endpoint, exchange, gunicorn, half_requests, nginx

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


BAD_CHUNK = (
    b"POST /regions/Leon HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n"
)


def json_answer(received: bytes) -> tuple[int, dict[str, object]]:
    """The one answer in ``received``: its status and JSON body."""
    assert received.count(b"HTTP/1.") == 1, received
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (BAD_CHUNK, 400),
        (b"GET /regions/Leon%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (
            b"POST /regions/Leon HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"
            + b"x" * 70000,
            413,
        ),
        (b"GET /_glancesync_errors/400.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ],
    ids=["bad chunk", "NUL", "long URI", "large body", "the proxy's own pages"],
)
def test_what_nginx_refuses_is_one_json_answer(
    proxied: tuple[Endpoint, Endpoint], request_bytes: bytes, status: int
) -> None:
    front, _ = proxied
    answered, document = json_answer(exchange(front, request_bytes, CLIENT_TIMEOUT))
    assert answered == status
    assert document["error"]["code"] == status  # type: ignore[index]


def test_a_service_that_is_down_is_a_json_502(tmp_path: Path) -> None:
    missing = Endpoint(socket_path=str(tmp_path / "nobody-listens.sock"))
    with nginx(tmp_path / "nginx", missing, ready=False) as front:
        request = b"GET /regions/Leon HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answered, document = json_answer(exchange(front, request, CLIENT_TIMEOUT))
    assert answered == 502
    assert document == {
        "error": {
            "message": "Bad Gateway",
            "code": 502,
            "description": "the proxy cannot reach the service",
        }
    }
