"""Checks on how a request is framed, made before any endpoint looks at it.

Two spellings reach the application although the routes do not take them:

* ``//regions/R``: Werkzeug strips the leading slashes of a path before matching it,
  so ``merge_slashes = False`` alone does not make it a 404.
* A chunked body with a bad chunk size: the endpoints never read bodies, so gunicorn
  only met the bad chunk after the answer had gone, while draining the connection,
  and then sent its own HTML 400 behind the JSON answer. Reading the chunked body
  here turns it into one answer, a JSON 400, and gunicorn then closes the connection
  (it does not reuse one whose body failed to read).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from gunicorn.http.errors import ParseException

from fiwareglancesync.app.errors import ApiError

# As much as gunicorn itself drains of a body nobody read, and as long as it waits for
# it: reading here holds a thread no longer than gunicorn's own drain would have.
BODY_LIMIT = 64 * 1024
BODY_SECONDS = 5.0


def install(app: Flask) -> None:
    """After the metrics timer (these answers are counted too), before any endpoint."""
    app.before_request(check_framing)


def check_framing() -> None:
    raw_path = request.environ.get("PATH_INFO", "")
    if raw_path.startswith("//"):
        request.url_rule = None  # counted in /metrics as a request with no route
        raise ApiError(404)
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        _read_chunked_body()


def _read_chunked_body() -> None:
    stream = request.environ["wsgi.input"]
    sock = request.environ.get("gunicorn.socket")
    deadline = time.monotonic() + BODY_SECONDS
    read = 0
    with _restored_timeout(sock):
        while read < BODY_LIMIT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if isinstance(sock, socket.socket):
                sock.settimeout(remaining)  # gunicorn's threads read without a deadline
            try:
                data = stream.read(min(4096, BODY_LIMIT - read))
            except OSError:
                # A client that stopped sending or went away: answered as before;
                # gunicorn closes the connection afterwards, its body being unread.
                return
            except (ParseException, ValueError) as error:  # gunicorn's, or another server's
                raise ApiError(
                    400, "Bad request", f"malformed chunked request body: {_first_line(error)}"
                ) from None
            if not data:
                return
            read += len(data)


@contextlib.contextmanager
def _restored_timeout(sock: Any) -> Iterator[None]:
    if not isinstance(sock, socket.socket):
        yield
        return
    before = sock.gettimeout()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(before)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
