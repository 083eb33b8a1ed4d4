"""A small Keystone v3 on 127.0.0.1 for the token verifier's tests: real HTTP, real
keystoneclient on the other side, answers a test can choose.

``POST /v3/auth/tokens`` gives the service its token (or 401 for a wrong password);
``GET /v3/auth/tokens`` validates ``X-Subject-Token`` from :attr:`FakeKeystone.tokens`
(200 with the token document, 404 for an unknown one, or a status a test chose).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE_TOKEN = "service-token"


def token_document(
    user: str = "alice", roles: tuple[str, ...] = ("admin",), hours: float = 1
) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    return {
        "token": {
            "methods": ["password"],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "user": {
                "id": f"{user}-id",
                "name": user,
                "domain": {"id": "default", "name": "Default"},
            },
            "project": {
                "id": "p1",
                "name": "admin",
                "domain": {"id": "default", "name": "Default"},
            },
            "roles": [{"id": f"r-{role}", "name": role} for role in roles],
        }
    }


class FakeKeystone:
    def __init__(self, password: str = "pw"):
        self.password = password
        self.tokens: dict[str, Any] = {}  # subject token -> document, or an HTTP status
        self.logins = 0
        self.validations = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        keystone = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(
                self, status: int, body: Any = None, headers: dict[str, str] | None = None
            ) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                password = body["auth"]["identity"]["password"]["user"]["password"]
                keystone.logins += 1
                if password != keystone.password:
                    self._answer(
                        401,
                        {
                            "error": {
                                "code": 401,
                                "message": "The request you have made requires authentication.",
                            }
                        },
                    )
                    return
                self._answer(
                    201, token_document("svc", ("service",)), {"X-Subject-Token": SERVICE_TOKEN}
                )

            def do_GET(self) -> None:
                if self.headers.get("X-Auth-Token") != SERVICE_TOKEN:
                    self._answer(401, {"error": {"code": 401}})
                    return
                keystone.validations += 1
                subject = self.headers.get("X-Subject-Token", "")
                found = keystone.tokens.get(subject, 404)
                if isinstance(found, int):
                    self._answer(found, {"error": {"code": found, "message": "no"}})
                else:
                    self._answer(200, found, {"X-Subject-Token": subject})

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@contextmanager
def fake_keystone(password: str = "pw") -> Iterator[FakeKeystone]:
    keystone = FakeKeystone(password)
    thread = threading.Thread(target=keystone.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield keystone
    finally:
        keystone.server.shutdown()
        keystone.server.server_close()
