"""Run syncs outside the request: one daemon thread per task, with a lease heartbeat.

The thread calls the same engine operation as ``sync.py`` (``GlanceSync.sync``)
inside its own application context, then records the outcome. A second thread renews
the task's lease while the sync runs; if this process dies, the lease runs out and the
task is failed by whoever looks at it next (see :mod:`taskstore`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from fiwareglancesync.app import taskstore
from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.models import FAILED, SYNCED
from fiwareglancesync.app.multiproc import METRICS_EXTENSION as METRICS
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import explain
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

EngineFactory = Callable[[], GlanceSync]


class SyncRunner:
    """Starts and tracks the sync threads of this process."""

    def __init__(self, app: Flask, new_engine: EngineFactory, lease_seconds: float):
        self.app = app
        self.new_engine = new_engine
        self.lease_seconds = lease_seconds
        # Several renewals fit in one lease, so one slow database write does not lose it.
        self.heartbeat_seconds = lease_seconds / 4
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, task_id: str, region: str, owner: str) -> None:
        thread = threading.Thread(
            target=self._run, args=(task_id, region, owner), name=f"sync-{region}", daemon=True
        )
        with self._lock:
            self._threads[task_id] = thread
        thread.start()

    def running(self) -> list[str]:
        with self._lock:
            return list(self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running syncs (tests, shutdown); True when none is left."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def _run(self, task_id: str, region: str, owner: str) -> None:
        try:
            with self.app.app_context():
                stop = threading.Event()
                beat = threading.Thread(
                    target=self._heartbeat, args=(task_id, owner, stop), daemon=True
                )
                beat.start()
                started = time.monotonic()
                try:
                    figures, message = self._sync(task_id, region)
                finally:
                    stop.set()
                    beat.join()
                figures.duration = time.monotonic() - started
                self._record(task_id, owner, SYNCED if figures.ok else FAILED, message)
                metrics = self.app.extensions.get(METRICS)
                if metrics is not None:
                    metrics.observe_sync(figures)
        finally:
            with self._lock:
                self._threads.pop(task_id, None)

    def _sync(self, task_id: str, region: str) -> tuple[RegionFigures, str | None]:
        """The region's figures (``ok``: synced) and, when it failed, the task's message."""
        logger.info("Task %s: sync of region %s started", task_id, region)
        engine: GlanceSync | None = None
        try:
            engine = self.new_engine()
            # A sync never works from a cached listing of the master.
            result = engine.sync(RegionRef.parse(region), fresh=True)
        except Exception as error:
            explained = explain(error)
            if explained.bug:
                logger.exception("Task %s: sync of region %s failed unexpectedly", task_id, region)
            else:
                logger.error(
                    "Task %s: sync of region %s failed: %s", task_id, region, explained.text
                )
            return RegionFigures(region, ok=False), explained.text
        finally:
            if engine is not None:
                engine.close()
        logger.info(
            "Task %s: region %s synchronised (%d changes, %d bytes uploaded)",
            task_id,
            region,
            result.changes,
            result.uploaded_bytes,
        )
        return result, None

    def _record(self, task_id: str, owner: str, status: str, message: str | None) -> None:
        try:
            if not taskstore.finish(task_id, owner, status, message):
                logger.warning("Task %s had already been failed (its lease ran out)", task_id)
        except SQLAlchemyError as error:
            db.session.rollback()
            # The lease will run out and the task will be failed: it is not lost.
            logger.error("Task %s: cannot record its end (%s): %s", task_id, status, error)

    def _heartbeat(self, task_id: str, owner: str, stop: threading.Event) -> None:
        with self.app.app_context():
            while not stop.wait(self.heartbeat_seconds):
                try:
                    if not taskstore.renew_lease(task_id, owner, self.lease_seconds):
                        logger.warning("Task %s: lease lost, the task was failed", task_id)
                        return
                except SQLAlchemyError as error:
                    db.session.rollback()
                    logger.warning("Task %s: cannot renew the lease: %s", task_id, error)
