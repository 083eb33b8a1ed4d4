"""What each mode of ``sync.py`` does, region after region or with ``--parallel``.

A failure inside a region is logged (one line, from :func:`errors.explain`) and the next
region goes on; the exit status says whether any region failed.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fiwareglancesync.backup import PROJECT_IDS_FILE, project_ids_text
from fiwareglancesync.config import MASTER
from fiwareglancesync.console import configure_logging, write_data
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import (
    ExitStatus,
    GlanceSyncError,
    ImagesRefused,
    explain,
    os_reason,
)
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.image import write_rows
from fiwareglancesync.metrics import write_metrics
from fiwareglancesync.modes import Mode
from fiwareglancesync.parallel import ForkPool, Outcome
from fiwareglancesync.region import RegionRef
from fiwareglancesync.regionlock import RegionBusy
from fiwareglancesync.report import (
    RegionReport,
    StatusReport,
    build_report,
    image_entries,
    render_html,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How the run was asked for: the mode, the regions, and how to run them."""

    mode: Mode
    regions: tuple[str, ...] = ()
    parallel: bool = False
    debug: bool = False
    output_format: str = "csv"  # --show-status: csv rows, or a json or html report
    metrics_file: str | None = None
    backup_format: int | None = None  # --make-backup: CSV format 1 or 2 (None: automatic)

    @property
    def reports(self) -> bool:
        return self.mode is Mode.STATUS and self.output_format != "csv"


# --------------------------------------------------------------------------- one region


def run_region(
    engine: GlanceSync, region: RegionRef, options: RunOptions, backup_dir: Path | None
) -> Outcome:
    """Do the run's mode for one region; failures are logged, never raised (but
    interruptions)."""
    mode = options.mode
    outcome = Outcome(region.fullname, True)
    figures = RegionFigures(region.fullname)
    started = time.monotonic()
    try:
        if mode is Mode.STATUS:
            statuses = engine.status(region).images
            # The reports and the service read entries; rows are only the CSV.
            outcome.entries = image_entries(statuses)
            if not options.reports:
                outcome.rows = [entry.fields() for entry in statuses]
            figures = RegionFigures.of_statuses(region.fullname, (e.status for e in statuses))
        elif mode is Mode.BACKUP:
            assert backup_dir is not None
            engine.backup(region, backup_dir, options.backup_format)
        else:
            logger.info("======%s", region)
            # A real sync tidies the region up itself (in --parallel children too); a
            # read-only run writes nothing, not even a compaction.
            figures = engine.sync(region, dry_run=mode is Mode.DRY_RUN)
    except Exception as error:  # noqa: BLE001 - one region's failure, whatever it is
        if isinstance(error, ImagesRefused):  # the region did all but those images
            figures = error.result
        outcome.ok = False
        outcome.error = _report(region, error, options.debug)
    figures.ok = outcome.ok
    figures.duration = time.monotonic() - started
    outcome.figures = figures
    return outcome


def _report(region: RegionRef, error: Exception, debug: bool) -> str:
    """Log why the region failed (one line); return that line for the reports."""
    explained = explain(error)
    # Another run on the region is not this run's error: a warning, and the region skipped.
    level = logging.WARNING if isinstance(error, RegionBusy) else logging.ERROR
    for line in explained.lines:
        logger.log(level, "%s: %s", region, line)
    if debug and not isinstance(error, RegionBusy):
        logger.error("%s", "".join(traceback.format_exception(error)))
    return explained.text


def write_project_ids(engine: GlanceSync, regions: list[RegionRef], directory: Path) -> None:
    """Record the project id of every target the backup used, beside its CSVs.

    The mock replays the backup with them, so the owners in the CSVs match the projects
    the configuration names. A target that cannot say (its Keystone is down) has already
    failed its regions; it is left out.
    """
    ids = engine.project_ids(region.target for region in regions)
    if not ids:
        return
    path = directory / PROJECT_IDS_FILE
    try:
        path.write_text(project_ids_text(ids), encoding="utf-8")
    except OSError as error:
        raise GlanceSyncError(f"cannot write {path}: {os_reason(error)}") from None


def print_rows(rows: list[tuple[str, ...]], out: TextIO) -> None:
    """Status rows, written by the csv module: a name with a comma stays one row."""
    if rows:
        write_data(out, lambda: write_rows(out, rows))


def _finished(outcome: Outcome) -> None:
    suffix = "" if outcome.ok else " with errors"
    logger.info("Region %s has finished%s", outcome.region, suffix)


# --------------------------------------------------------------------------- directories


def _new_directory(name: str, what: str) -> Path:
    path = Path(name)
    try:
        path.mkdir()
    except FileExistsError:
        raise
    except OSError as error:
        raise GlanceSyncError(
            f"cannot create the {what} directory {path} in the current directory: "
            f"{os_reason(error)}"
        ) from None
    return path


def fresh_log_dir() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    for attempt in range(1000):
        with contextlib.suppress(FileExistsError):
            return _new_directory(f"sync_{stamp}" + (f"_{attempt}" if attempt else ""), "log")
    raise GlanceSyncError("cannot create a fresh sync_<date> log directory")


def new_backup_dir() -> Path:
    return _new_directory(f"backup_glance_{datetime.datetime.now().isoformat()}", "backup")


# --------------------------------------------------------------------------- modes


def show_regions(engine: GlanceSync, out: TextIO) -> ExitStatus:
    regions, failures = engine.regions()
    for target, error in failures:
        _target_failed(target, error)
    names = [region.fullname for region in regions]
    write_data(out, lambda: print(" ".join(names), file=out))
    return ExitStatus.REGION_FAILED if failures else ExitStatus.OK


def _target_failed(target: str, error: GlanceSyncError) -> None:
    logger.error("target %s: its regions cannot be listed: %s", target, explain(error).text)


def _regions_of_run(engine: GlanceSync, options: RunOptions) -> tuple[list[RegionRef], bool]:
    """The regions to work on, and whether some target's regions could not be listed.

    The engine lists the master once, before any region (and before --parallel forks),
    with every target's selection: a failure to list the master is reported by every
    region that needs it, a metadata_condition past its limits stops the run here
    (configuration error).
    """

    def resolved(regions: list[RegionRef], failures: list[tuple[str, GlanceSyncError]]) -> None:
        for target, error in failures:
            _target_failed(target, error)
        if not options.mode.prints_data:
            logger.info("======Master is %s", engine.config.master_region)

    names = options.regions or (f"{MASTER}:",)
    backup = options.mode is Mode.BACKUP
    regions, failures = engine.run_regions(names, master_first=backup, resolved=resolved)
    return regions, bool(failures)


def _run_sequentially(
    engine: GlanceSync,
    regions: list[RegionRef],
    options: RunOptions,
    backup_dir: Path | None,
    out: TextIO,
) -> list[Outcome]:
    outcomes = []
    for region in regions:
        outcome = run_region(engine, region, options, backup_dir)
        outcomes.append(outcome)
        if options.mode is not Mode.STATUS:
            _finished(outcome)
        if not options.reports:
            print_rows(outcome.rows, out)
            # Printed: keep nothing of every region's images in memory.
            outcome.rows, outcome.entries = [], []
    return outcomes


def _run_in_parallel(
    engine: GlanceSync, regions: list[RegionRef], options: RunOptions, backup_dir: Path | None
) -> list[Outcome]:
    log_dir = fresh_log_dir()
    logger.info("Logs of each region in %s/", log_dir)

    def work(region: RegionRef, log: TextIO) -> Outcome:
        # In the child: its own log file (the engine makes its own connections).
        configure_logging(log, options.debug)
        return run_region(engine, region, options, backup_dir)

    pool = ForkPool(min(engine.config.max_children, len(regions)), log_dir)
    outcomes = pool.run(regions, work, _finished) if regions else []
    logger.info("All is done.")
    return outcomes


def status_report(engine: GlanceSync, outcomes: list[Outcome]) -> StatusReport:
    regions = [RegionReport(outcome.region, outcome.entries, outcome.error) for outcome in outcomes]
    return build_report(engine.config, regions)


def _print_report(
    engine: GlanceSync, outcomes: list[Outcome], options: RunOptions, out: TextIO
) -> None:
    report = status_report(engine, outcomes)
    text = report.json_text() if options.output_format == "json" else render_html(report)
    write_data(out, lambda: out.write(text))


def _write_metrics(outcomes: list[Outcome], options: RunOptions, started: float, ok: bool) -> None:
    # A child that died said nothing: its region failed, with no figures.
    figures = [outcome.figures or RegionFigures(outcome.region, ok=False) for outcome in outcomes]
    assert options.metrics_file is not None
    write_metrics(options.metrics_file, figures, options.mode.value, started, ok)


def run(engine: GlanceSync, options: RunOptions, out: TextIO) -> ExitStatus:
    """Do what the command line asked; the exit status says whether a region failed."""
    if options.mode is Mode.REGIONS:
        return show_regions(engine, out)
    started = time.time()
    regions, targets_failed = _regions_of_run(engine, options)
    backup_dir = new_backup_dir() if options.mode is Mode.BACKUP else None
    if options.parallel:
        outcomes = _run_in_parallel(engine, regions, options, backup_dir)
        if not options.reports:
            for outcome in outcomes:
                print_rows(outcome.rows, out)
    else:
        outcomes = _run_sequentially(engine, regions, options, backup_dir, out)
    if options.reports:
        _print_report(engine, outcomes, options, out)
    if backup_dir is not None:
        write_project_ids(engine, regions, backup_dir)
        logger.info("Backup written to %s", backup_dir)
    failed = targets_failed or any(not outcome.ok for outcome in outcomes)
    if options.metrics_file:
        _write_metrics(outcomes, options, started, not failed)
    return ExitStatus.REGION_FAILED if failed else ExitStatus.OK
