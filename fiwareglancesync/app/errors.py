"""One JSON error shape for every error the service answers.

``{"error": {"message": ..., "code": ...}}``, with an optional ``description``. Views
raise :class:`ApiError`; unknown URLs and methods come from Werkzeug; anything else is a
bug, logged with its traceback and answered 500 without one.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

logger = logging.getLogger(__name__)

MESSAGES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Item not found",
    405: "Bad method",
    409: "Conflict",
    410: "Bad region",
    500: "Unhandled exception",
    503: "Service unavailable",
}


class ApiError(Exception):
    """An error answered to the caller as it is."""

    def __init__(self, code: int, message: str | None = None, description: str | None = None):
        self.code = code
        self.message = message or default_message(code)
        self.description = description
        super().__init__(f"{code} {self.message}")


def default_message(code: int) -> str:
    return MESSAGES.get(code) or HTTP_STATUS_CODES.get(code, "Error")


def error_response(
    code: int, message: str | None = None, description: str | None = None
) -> Response:
    error: dict[str, object] = {"message": message or default_message(code), "code": code}
    if description:
        error["description"] = description
    response = jsonify({"error": error})
    response.status_code = code
    return response


def _api_error(error: ApiError) -> Response:
    return error_response(error.code, error.message, error.description)


def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    response = error_response(code)
    allowed = dict(error.get_headers()).get("Allow")  # 405 says which methods would do
    if allowed:
        response.headers["Allow"] = allowed
    return response


def _database_down(error: OperationalError) -> Response:
    # The task database did not answer (PostgreSQL down, SQLite locked for too long):
    # like an unreachable cloud, it is the service that is unavailable, not a bug.
    logger.error("The task database is unavailable: %s", error.orig or error)
    return error_response(503, description="the task database is unavailable")


def _unexpected(error: Exception) -> Response:
    logger.exception("Unhandled exception answering %s %s", request.method, request.path)
    return error_response(500)


def _json_options(response: Response) -> Response:
    """Flask answers OPTIONS by itself with an empty body: answer JSON like the rest."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.is_json:
        allowed = sorted(
            method.strip()
            for method in response.headers.get("Allow", "").split(",")
            if method.strip()
        )
        options = jsonify({"methods": allowed})
        options.headers["Allow"] = ", ".join(allowed)
        return options
    return response


def register_error_handlers(app: Flask) -> None:
    app.after_request(_json_options)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(Exception, _unexpected)
