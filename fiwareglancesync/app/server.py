"""Serving: the start-up and shutdown steps, and gunicorn as a library.

Each gunicorn worker builds its own application (no preloading: database connections
and threads must not cross a fork), fails the tasks of dead local workers when it
starts, and fails the syncs it still runs when it exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from fiwareglancesync.app import taskstore
from fiwareglancesync.app.metrics import mark_worker_dead

logger = logging.getLogger(__name__)


def on_start(app: Flask) -> None:
    """Free the regions of syncs whose process died, before taking requests."""
    with app.app_context():
        taskstore.reap_dead_local_workers()
        taskstore.reap_expired()


def on_exit(app: Flask) -> None:
    """Fail the syncs still running in this process: it is going away."""
    with app.app_context():
        count = taskstore.fail_tasks_of_this_process()
    if count:
        logger.warning("%d running sync(s) failed: the server process is stopping", count)


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn run from ``run.py gunicornserver`` with options from the settings."""

    def __init__(self, app_factory: Callable[[], Flask], options: dict[str, Any]):
        self.app_factory = app_factory
        self.options = options
        self.flask_app: Flask | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)
        self.cfg.set("worker_exit", _worker_exit)
        self.cfg.set("child_exit", _child_exit)

    def load(self) -> Flask:
        # Runs in the worker process, after the fork.
        self.flask_app = self.app_factory()
        on_start(self.flask_app)
        return self.flask_app


def _child_exit(_server: Any, worker: Any) -> None:
    """In the master: a worker that ended no longer counts in /metrics' live figures."""
    mark_worker_dead(worker.pid)


def _worker_exit(_server: Any, worker: Any) -> None:
    flask_app = getattr(worker.app, "flask_app", None)
    if flask_app is not None:
        try:
            on_exit(flask_app)
        except Exception:
            logger.exception("cannot fail the running syncs of this worker")
