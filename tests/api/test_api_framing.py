"""Odd spellings and framings of a request, sent as raw bytes to a real gunicorn.

The service runs as ``run.py gunicornserver`` with ``AUTH_STRATEGY = noauth`` on the
example loaded into a mock store (the fixture of ``test_api_noauth``). Each request is
written to a plain socket, and everything the server sends until it closes the
connection is read back, so a second answer behind the first cannot go unseen.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
from pathlib import Path

from test_api_noauth import noauth_service  # noqa: F401 - the fixture

READ_TIMEOUT = 15.0  # a failure bound for a server that keeps the connection open
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=READ_TIMEOUT) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def answers(received: bytes) -> list[int]:
    """The status code of every response in ``received``, in order."""
    return [int(code) for code in STATUS_LINE.findall(received)]


def json_body(received: bytes) -> dict[str, object]:
    return json.loads(received.partition(b"\r\n\r\n")[2])


def get(url: str, target: str) -> bytes:
    return exchange(url, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def test_a_doubled_leading_slash_is_a_json_404(noauth_service: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = noauth_service
    assert answers(get(url, "/regions/Leon")) == [200]
    for target in ("//regions/Leon", "//regions/Leon/tasks/x", "///"):
        received = get(url, target)
        assert answers(received) == [404], received
        assert json_body(received)["error"] == {"message": "Item not found", "code": 404}


def test_a_nul_in_a_region_name_is_named_as_such(noauth_service: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = noauth_service
    received = get(url, "/regions/Leon%00")
    assert answers(received) == [410]
    description = json_body(received)["error"]["description"]  # type: ignore[index]
    assert description == (
        "bad region name 'Leon\\x00': a region name cannot contain a NUL character (\\x00)"
    )


def test_a_bad_chunk_size_gets_one_json_answer(noauth_service: tuple[str, Path]) -> None:  # noqa: F811
    url, folder = noauth_service
    received = exchange(
        url,
        b"POST /regions/Leon HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
    )
    # Before: the answer of the endpoint (a sync started), then gunicorn's HTML 400.
    assert answers(received) == [400], received
    error = json_body(received)["error"]
    assert error["message"] == "Bad request"  # type: ignore[index]
    assert "malformed chunked request body" in error["description"]  # type: ignore[index]
    assert b"<html>" not in received
    # Nothing was started on a request that could not be read.
    with contextlib.closing(sqlite3.connect(folder / "glancesyncapi.db")) as database:
        assert database.execute("SELECT count(*) FROM task").fetchone() == (0,)


def test_a_well_formed_chunked_body_is_read_and_ignored(noauth_service: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = noauth_service
    received = exchange(
        url,
        b"GET /regions/Leon HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    assert answers(received) == [200], received
