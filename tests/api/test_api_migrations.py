"""The shipped migrations build exactly the models' schema and keep existing tasks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import Engine, inspect, text

from fiwareglancesync.app import create_app, taskstore
from fiwareglancesync.app.database import schema_problem
from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.settings import Settings


@pytest.fixture
def bare_app(database_url: str) -> Iterator[Flask]:
    """An application on an empty database: nothing has been migrated."""
    settings = Settings(database_uri=database_url)
    app = create_app({"GLANCESYNC_SETTINGS": settings, "DATABASE_ONLY": True}, environ={})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _normalise(sql: Any) -> str:
    """Index and check conditions as text, without quoting, casts or extra brackets."""
    text_ = str(sql).lower().replace('"', "")
    text_ = re.sub(r"::[a-z ]+(\([0-9]+\))?", "", text_)
    return re.sub(r"[()\s]", "", text_)


def _where(options: dict[str, Any]) -> Any:
    """The condition of a partial index, whichever the dialect."""
    for key in ("sqlite_where", "postgresql_where"):
        if options.get(key) is not None:
            return options[key]
    return None


def describe(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    tables = sorted(set(inspector.get_table_names()) - {"alembic_version"})
    schema: dict[str, Any] = {}
    for table in tables:
        indexes = []
        for index in inspector.get_indexes(table):
            options = index.get("dialect_options", {})
            where = _where(options)
            indexes.append(
                (
                    index["name"],
                    tuple(index["column_names"]),
                    bool(index["unique"]),
                    _normalise(where),
                )
            )
        schema[table] = {
            "columns": sorted(
                (column["name"], str(column["type"]), column["nullable"])
                for column in inspector.get_columns(table)
            ),
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(indexes),
            "checks": sorted(
                (check["name"], _normalise(check["sqltext"]))
                for check in inspector.get_check_constraints(table)
            ),
        }
    return schema


def test_upgrade_of_an_empty_database_gives_the_models_schema(bare_app: Flask) -> None:
    assert "run.py db upgrade" in (schema_problem(bare_app) or "")
    flask_migrate.upgrade()
    assert schema_problem(bare_app) is None
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
    migrated = describe(db.engine)

    flask_migrate.downgrade(revision="base")
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    assert describe(db.engine) == {}
    db.metadata.create_all(db.engine)
    assert describe(db.engine) == migrated


def test_the_partial_unique_index_is_really_there(bare_app: Flask) -> None:
    flask_migrate.upgrade()
    [index] = [
        index
        for index in inspect(db.engine).get_indexes("task")
        if index["name"] == "uq_task_region_syncing"
    ]
    assert index["unique"]
    assert _normalise(_where(index.get("dialect_options", {}))) == "status='syncing'"


def test_upgrading_an_existing_database_keeps_its_tasks(bare_app: Flask) -> None:
    flask_migrate.upgrade(revision="0001")
    with db.engine.begin() as connection:
        for task_id, status, message in [
            ("t-synced", "synced", None),
            ("t-failed", "failed", "the store was full"),
            ("t-syncing", "syncing", None),
        ]:
            connection.execute(
                text(
                    "INSERT INTO task (id, region, status, requested_by, message, "
                    "created_at, updated_at) VALUES (:id, 'Leon', :status, 'alice', "
                    ":message, '2024-05-01 10:00:00', '2024-05-01 10:05:00')"
                ),
                {"id": task_id, "status": status, "message": message},
            )
    flask_migrate.upgrade()
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status, message, requested_by, owner FROM task ORDER BY id")
        ).all()
    assert [(row.id, row.status, row.requested_by, row.owner) for row in rows] == [
        ("t-failed", "failed", "alice", None),
        ("t-synced", "synced", "alice", None),
        ("t-syncing", "failed", "alice", None),
    ]
    messages = {row.id: row.message for row in rows}
    assert messages["t-failed"] == "the store was full"
    assert "upgraded" in messages["t-syncing"]
    # The region is free: the service can sync it.
    assert taskstore.claim_region("Leon", ("bob", "bob-id"), 30).created


def test_upgrade_twice_changes_nothing_and_downgrade_returns(bare_app: Flask) -> None:
    flask_migrate.upgrade()
    flask_migrate.upgrade()
    flask_migrate.downgrade(revision="0001")
    assert "requested_by_id" not in {c["name"] for c in inspect(db.engine).get_columns("task")}
    flask_migrate.upgrade()
    assert schema_problem(bare_app) is None
