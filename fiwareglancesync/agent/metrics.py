"""The agent's figures, in Prometheus' format: a textfile and an optional HTTP port.

The textfile (``--metrics-file``) is replaced at once after each action, for
node_exporter's textfile collector, as ``sync.py --metrics-file`` writes its own; the
port (``--metrics-port``) serves the same registry on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from fiwareglancesync import __version__
from fiwareglancesync.errors import UsageError, os_reason

logger = logging.getLogger(__name__)

PREFIX = "glancesync_agent"
LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
AUDIT_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200)
LOOPBACK = "127.0.0.1"


class AgentMetrics:
    def __init__(self, metrics_file: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.metrics_file = metrics_file
        self._file_failed = False
        self._server: Any = None
        r = self.registry
        self.events = Counter(
            f"{PREFIX}_events",
            "Master changes seen, by source (notification, poll)",
            ["source"],
            registry=r,
        )
        self.coalesced = Counter(
            f"{PREFIX}_events_coalesced",
            "Events that joined a change of the same image already waiting for its sync",
            registry=r,
        )
        self.malformed = Counter(
            f"{PREFIX}_malformed_notifications",
            "Notifications skipped as unreadable",
            registry=r,
        )
        self.lag = Histogram(
            f"{PREFIX}_change_lag_seconds",
            "From a master change seen to its regional copy synchronised, by region",
            ["region"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.last_lag = Gauge(
            f"{PREFIX}_region_last_lag_seconds",
            "The lag of the last change synchronised into the region",
            ["region"],
            registry=r,
        )
        self.syncs = Counter(
            f"{PREFIX}_region_syncs",
            "Syncs of a region, by why (change, audit) and outcome (ok, failed)",
            ["region", "reason", "outcome"],
            registry=r,
        )
        self.audits = Histogram(
            f"{PREFIX}_audit_duration_seconds",
            "How long each audit took",
            buckets=AUDIT_BUCKETS,
            registry=r,
        )
        self.last_audit = Gauge(
            f"{PREFIX}_last_audit_timestamp_seconds",
            "When the last audit ended (Unix time)",
            registry=r,
        )
        self.owned_count = Gauge(
            f"{PREFIX}_owned_regions", "How many regions this agent owns", registry=r
        )
        self.owned = Gauge(
            f"{PREFIX}_region_owned", "1 for each region this agent owns", ["region"], registry=r
        )
        self.following = Gauge(
            f"{PREFIX}_following_notifications",
            "1 while the agent follows the master's notifications, 0 while it polls",
            registry=r,
        )
        self.polls = Counter(f"{PREFIX}_master_polls", "Listings of the master", registry=r)
        Gauge(f"{PREFIX}_info", "The agent's GlanceSync version", ["version"], registry=r).labels(
            __version__
        ).set(1)
        self._owned_names: set[str] = set()

    def set_owned(self, regions: Iterable[str]) -> None:
        names = set(regions)
        for gone in self._owned_names - names:
            self.owned.remove(gone)
        for name in names:
            self.owned.labels(name).set(1)
        self._owned_names = names
        self.owned_count.set(len(names))

    def serve(self, port: int) -> None:
        """Serve the figures on 127.0.0.1:``port``; a UsageError if it cannot."""
        from prometheus_client import start_http_server

        try:
            self._server, _ = start_http_server(port, addr=LOOPBACK, registry=self.registry)
        except OSError as error:
            raise UsageError(
                f"cannot serve the metrics on {LOOPBACK}:{port}: {os_reason(error)}"
            ) from None
        logger.info("Metrics served on http://%s:%d/metrics", LOOPBACK, port)

    def write(self) -> None:
        """Replace the textfile (if any); a failure is one warning until it works again."""
        if not self.metrics_file:
            return
        try:
            write_to_textfile(self.metrics_file, self.registry)
        except OSError as error:
            if not self._file_failed:
                logger.warning(
                    "cannot write the metrics file %s: %s", self.metrics_file, os_reason(error)
                )
            self._file_failed = True
            return
        self._file_failed = False

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
