"""``sync.py --metrics-file PATH``: the run's figures in Prometheus' text format.

Written the way node_exporter's textfile collector reads them: the whole file replaced
at once (prometheus_client writes a temporary file and renames it). Regions this run did
not touch keep the values the previous file had for them, so a run of a few regions
does not make the others vanish from the dashboards; two figures are carried from one
run to the next on purpose: how many runs in a row each region has failed, and since
when it has had images pending.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fiwareglancesync import __version__
from fiwareglancesync.errors import GlanceSyncError, os_reason
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.plan import STATUSES

PREFIX = "glancesync"
PENDING = tuple(status for status in STATUSES if status.startswith("pending_"))
# The image counts by region and status: what the run left behind, and what it found
# before acting (the same for a run that changes nothing).
IMAGE_GAUGES: dict[str, str] = {
    "images": "Images by region and sync status, as the last run left them",
    "images_found": "Images by region and sync status, as the last run found them before acting",
}
# What is kept per region, with its help text; the metric name is PREFIX_<key>.
REGION_GAUGES: dict[str, str] = {
    "region_last_run_success": "1 when the last run that processed the region succeeded there",
    "region_last_run_duration_seconds": "How long the last run took on the region",
    "region_last_run_timestamp_seconds": "When the last run processed the region (Unix time)",
    "region_consecutive_failures": "Runs in a row that failed on the region",
    "region_pending_since_timestamp_seconds": "Since when the region has had pending "
    "images, run after run (Unix time; 0: none pending)",
    "uploaded_bytes": "Bytes the last run uploaded to the region",
    "uploaded_images": "Images the last run uploaded to the region",
    "streamed_bytes": "Image bytes that went through this host for the region: uploaded "
    "data and the pre-flight checks' first MiB (all a glance-download moves here)",
}


@dataclass
class _Previous:
    """The figures of the file being replaced, by region."""

    regions: dict[str, dict[str, float]] = field(default_factory=dict)
    # By gauge key ("images", "images_found"), then by (region, status).
    images: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)


def _read_previous(path: Path) -> _Previous:
    # Imported here: only a run with --metrics-file needs prometheus_client.
    from prometheus_client.parser import text_string_to_metric_families

    previous = _Previous()
    with contextlib.suppress(OSError, ValueError):
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                region = sample.labels.get("region")
                if region is None or not math.isfinite(sample.value):
                    continue
                key = sample.name.removeprefix(f"{PREFIX}_")
                if key in IMAGE_GAUGES:
                    status = sample.labels.get("status", "")
                    previous.images.setdefault(key, {})[(region, status)] = sample.value
                elif key in REGION_GAUGES:
                    previous.regions.setdefault(region, {})[key] = sample.value
    return previous


def _region_values(
    figures: RegionFigures, before: dict[str, float], now: float
) -> dict[str, float]:
    failures = 0 if figures.ok else int(before.get("region_consecutive_failures", 0)) + 1
    pending = any(figures.left.get(status) for status in PENDING)
    since = before.get("region_pending_since_timestamp_seconds", 0) or now
    if not figures.ok:  # nothing learnt about pending images: keep what was known
        since = before.get("region_pending_since_timestamp_seconds", 0)
    elif not pending:
        since = 0
    return {
        "region_last_run_success": 1 if figures.ok else 0,
        "region_last_run_duration_seconds": figures.duration,
        "region_last_run_timestamp_seconds": now,
        "region_consecutive_failures": failures,
        "region_pending_since_timestamp_seconds": since,
        "uploaded_bytes": figures.uploaded_bytes,
        "uploaded_images": figures.uploaded_images,
        "streamed_bytes": figures.streamed_bytes,
    }


def write_metrics(
    path: str | Path,
    regions: Iterable[RegionFigures],
    mode: str,
    started: float,
    succeeded: bool,
    now: float | None = None,
) -> None:
    """Replace ``path`` with this run's figures (and the untouched regions' old ones)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    path = Path(path)
    now = time.time() if now is None else now
    previous = _read_previous(path)
    registry = CollectorRegistry()
    images = {
        key: Gauge(f"{PREFIX}_{key}", text, ["region", "status"], registry=registry)
        for key, text in IMAGE_GAUGES.items()
    }
    gauges = {
        key: Gauge(f"{PREFIX}_{key}", text, ["region"], registry=registry)
        for key, text in REGION_GAUGES.items()
    }
    seen, counted = set(), set()
    for figures in regions:
        seen.add(figures.region)
        values = _region_values(figures, previous.regions.get(figures.region, {}), now)
        for key, value in values.items():
            gauges[key].labels(figures.region).set(value)
        if figures.ok:
            counted.add(figures.region)
            for status in STATUSES:
                images["images"].labels(figures.region, status).set(figures.left.get(status, 0))
                found = figures.found.get(status, 0)
                images["images_found"].labels(figures.region, status).set(found)
    for region, values in previous.regions.items():
        if region not in seen:
            for key, value in values.items():
                gauges[key].labels(region).set(value)
    # Image counts this run could not refresh (a region it did not do, or failed on) are
    # the last ones known.
    for key, counts in previous.images.items():
        for (region, status), value in counts.items():
            if region not in counted:
                images[key].labels(region, status).set(value)
    run = Gauge(
        f"{PREFIX}_last_run_timestamp_seconds",
        "When the last run ended (Unix time)",
        registry=registry,
    )
    run.set(now)
    Gauge(
        f"{PREFIX}_last_run_duration_seconds", "How long the last run took", registry=registry
    ).set(now - started)
    Gauge(
        f"{PREFIX}_last_run_success",
        "1 when every region of the last run succeeded",
        registry=registry,
    ).set(1 if succeeded else 0)
    info = Gauge(
        f"{PREFIX}_last_run_info",
        "The last run's mode and GlanceSync version",
        ["mode", "version"],
        registry=registry,
    )
    info.labels(mode, __version__).set(1)
    try:
        write_to_textfile(str(path), registry)
    except OSError as error:
        reason = os_reason(error)
        raise GlanceSyncError(f"cannot write the metrics file {path}: {reason}") from None
