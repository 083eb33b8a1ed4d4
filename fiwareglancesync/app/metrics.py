"""``GET /metrics``: the service's figures in Prometheus' text format (prometheus_client).

Requests by endpoint, method and status code with their latency, sync tasks by state,
and how long syncs took. Under gunicorn several workers answer ``/metrics`` in turn, so
their counters are kept in prometheus_client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, which ``run.py gunicornserver`` sets up) and every scrape
adds up all the workers; the task counts are read from the database at each scrape, so
they are the same whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.models import TASK_STATUSES, Task
from fiwareglancesync.app.multiproc import METRICS_EXTENSION as EXTENSION
from fiwareglancesync.app.multiproc import MULTIPROCESS_VARIABLE
from fiwareglancesync.figures import RegionFigures

# Label values come from closed sets, so nobody can grow /metrics by inventing methods
# or paths: anything else is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30)
SYNC_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


class TaskCollector:
    """Sync tasks by state, counted in the database when Prometheus scrapes."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("glancesync_tasks", "Sync tasks by state", labels=["state"])
        with self.app.app_context():
            rows = dict(
                db.session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
            )
            db.session.commit()
        for state in TASK_STATUSES:
            family.add_metric([state], rows.get(state, 0))
        yield family


class ServiceMetrics:
    """The metrics of one application (one worker process)."""

    def __init__(self, app: Flask):
        self.app = app
        # In multiprocess mode values go to files, and the registry of each scrape reads
        # them all; otherwise they live in this application's own registry.
        self.registry = None if multiprocess_mode() else CollectorRegistry()
        self.requests = Counter(
            "glancesync_http_requests",
            "HTTP requests answered, by endpoint, method and status code",
            ["endpoint", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "glancesync_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint and method",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.syncs = Histogram(
            "glancesync_sync_duration_seconds",
            "Time a sync task took, by region and outcome (synced or failed)",
            ["region", "outcome"],
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        if self.registry is not None:
            self.registry.register(TaskCollector(app))

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(TaskCollector(self.app))
        return generate_latest(registry)

    def observe_sync(self, figures: RegionFigures) -> None:
        # Regions are the configured targets' (a closed set: a request for an unknown
        # region is refused before a sync starts), never image names.
        outcome = "synced" if figures.ok else "failed"
        self.syncs.labels(figures.region, outcome).observe(figures.duration)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    metrics: ServiceMetrics | None = current_app.extensions.get(EXTENSION)
    started = g.get("metrics_started")
    if metrics is not None and started is not None:
        endpoint, method, code = request_labels(response.status_code)
        metrics.requests.labels(endpoint, method, code).inc()
        metrics.latency.labels(endpoint, method).observe(time.perf_counter() - started)
    return response


def request_labels(status_code: int) -> tuple[str, str, str]:
    """The route template (never the path), a known method, a real status code."""
    endpoint = request.url_rule.rule if request.url_rule is not None else "(no route)"
    method = request.method if request.method in KNOWN_METHODS else OTHER
    code = str(status_code) if 100 <= status_code <= 599 else OTHER
    return endpoint, method, code


def metrics_view() -> Response:
    metrics: ServiceMetrics = current_app.extensions[EXTENSION]
    return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def install(app: Flask) -> ServiceMetrics:
    """Count every request of ``app`` and serve ``GET /metrics``."""
    metrics = ServiceMetrics(app)
    app.extensions[EXTENSION] = metrics
    app.before_request(_start_timer)
    app.after_request(_count)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
    return metrics


def mark_worker_dead(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges must not count any more."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
