#!/usr/bin/env python3
"""The image's HEALTHCHECK: ``GET /`` (it needs no token) where gunicorn listens.

On the unix socket ``GLANCESYNC_SOCKET`` when it is set (the service behind the
proxy), else on ``127.0.0.1:GLANCESYNC_PORT`` (8080 by default). Exit status 0 when
the answer is 200, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys

TIMEOUT = 4.0  # seconds: below the HEALTHCHECK's --timeout


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=TIMEOUT)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def main() -> int:
    path = os.environ.get("GLANCESYNC_SOCKET")
    if path:
        connection: http.client.HTTPConnection = UnixConnection(path)
    else:
        port = int(os.environ.get("GLANCESYNC_PORT") or "8080")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"unhealthy: GET / answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
