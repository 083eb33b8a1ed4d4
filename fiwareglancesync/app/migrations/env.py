"""Alembic environment: migrate the database of the current Flask application.

Run through Flask-Migrate (``run.py db upgrade``), so the URL and the metadata are the
application's. Logging is left alone: ``run.py`` has configured it already.
"""

from __future__ import annotations

import logging

from alembic import context
from flask import current_app

logger = logging.getLogger("alembic.env")

extension = current_app.extensions["migrate"]
engine = extension.db.engine
metadata = extension.db.metadata
context.config.set_main_option(
    "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
)


def _skip_empty_autogenerate(_context, _revision, directives) -> None:
    """`db migrate` with no model change writes no empty revision."""
    autogenerate = getattr(context.config.cmd_opts, "autogenerate", False)
    if autogenerate and directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    options = dict(extension.configure_args)
    options.setdefault("process_revision_directives", _skip_empty_autogenerate)
    # SQLite can roll back DDL too: an upgrade that fails half-way leaves nothing behind.
    options.setdefault("transactional_ddl", True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
