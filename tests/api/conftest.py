"""Fixtures of the service's API tests: an application on the mock cloud, per database.

``app`` is parametrised over SQLite (a fresh file) and PostgreSQL (a fresh database on a
private server the session starts, see ``pg_server.py``); the schema always comes from
the shipped migrations. Tokens are checked by a ``StaticVerifier`` (see ``api_support``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import EngineSwitch, make_app, tokens
from flask import Flask
from flask.testing import FlaskClient
from pg_server import (
    PostgresServer,
    PostgresUnavailable,
    server_from_environment,
    start_private_server,
)

from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.settings import Settings


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = server_from_environment()
    if server is not None:
        yield server
        return
    try:
        server = start_private_server()
    except PostgresUnavailable as error:
        pytest.fail(f"PostgreSQL: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'glancesyncapi.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'glancesyncapi.db'}"


@pytest.fixture
def verifier() -> StaticVerifier:
    return StaticVerifier(
        tokens(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)), service_project="project-id"
    )


@pytest.fixture
def engines() -> EngineSwitch:
    return EngineSwitch()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_uri=database_url, task_lease_seconds=30)


@pytest.fixture
def app(settings: Settings, verifier: StaticVerifier, engines: EngineSwitch) -> Iterator[Flask]:
    application = make_app(settings, verifier, engines)
    try:
        yield application
    finally:
        engines.release()  # a test that held a sync must not leave it hanging
        application.extensions["glancesync"].runner.wait(30)
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Code under test configures the root logger; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
