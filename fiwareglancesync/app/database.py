"""Database engine tuning and the schema-version check made before serving.

SQLite is shared by every gunicorn worker of a host, so each connection waits for the
write lock instead of failing (busy timeout), uses the write-ahead log (readers never
block the writer, and a killed process cannot corrupt the file), and starts every
transaction with ``BEGIN IMMEDIATE``: taking the write lock up front avoids the
"upgrade a read transaction to a write one" deadlock that a busy timeout cannot solve.
"""

from __future__ import annotations

import os
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fiwareglancesync.app.extensions import db

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the driver, open transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def tune_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    if not event.contains(engine, "connect", _sqlite_connect):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)


def configure_database(app: Flask) -> None:
    with app.app_context():
        tune_engine(db.engine)


def schema_problem(app: Flask) -> str | None:
    """Why the database cannot serve this code (not upgraded, unreachable), or None."""
    head = ScriptDirectory(MIGRATIONS_DIR).get_current_head()
    try:
        with app.app_context(), db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as error:  # noqa: BLE001 - any driver error is a start-up error
        return f"cannot open the database {db_url(app)}: {error}"
    if current != head:
        return (
            f"the database {db_url(app)} is at schema revision {current or 'none'}, this "
            f"version needs {head}: run `run.py db upgrade` first"
        )
    return None


def db_url(app: Flask) -> str:
    """The database URL without its password, for messages."""
    with app.app_context():
        return db.engine.url.render_as_string(hide_password=True)
