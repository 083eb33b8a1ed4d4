"""``sync.py``: synchronise, show the status, list regions or back up the regions."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fiwareglancesync import __version__
from fiwareglancesync.config import MASTER, load_config
from fiwareglancesync.engine import FacadeFactory, GlanceSync
from fiwareglancesync.errors import ExitStatus, GlanceSyncError
from fiwareglancesync.facades import facade_factory as default_facade_factory
from fiwareglancesync.facades.mock import backup_file_name
from fiwareglancesync.image import write_csv

logger = logging.getLogger("fiwareglancesync")
LOG_FORMAT = "%(levelname)s:%(message)s"
SYNC, DRY_RUN, STATUS, REGIONS, BACKUP = (
    "sync",
    "dry-run",
    "status",
    "regions",
    "backup",
)
DATA_MODES = (STATUS, REGIONS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync.py",
        description="Synchronise the Glance images of regions with the master region.",
        epilog="Regions: 'Region' (master target), 'target:Region', or 'target:' for every "
        "region of a target. Without regions: every region of the master target. Put the "
        "regions before --config, or after '--'. Exit status: 0 done, 1 a region failed, "
        "2 usage or configuration error, 130 interrupted.",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="synchronise up to max_children regions at once",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override an option: section.option=value ([DEFAULT] without a section)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--dry-run",
        dest="mode",
        action="store_const",
        const=DRY_RUN,
        help="show what would be done, change nothing",
    )
    modes.add_argument(
        "--show-status",
        dest="mode",
        action="store_const",
        const=STATUS,
        help="print status,region,image for every image each region synchronises",
    )
    modes.add_argument(
        "--show-regions",
        dest="mode",
        action="store_const",
        const=REGIONS,
        help="print the regions of every target on one line",
    )
    modes.add_argument(
        "--make-backup",
        "--make-backups",
        dest="mode",
        action="store_const",
        const=BACKUP,
        help="write the metadata of the regions and the master to backup_glance_<date>/",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of bugs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("regions", nargs="*", metavar="region", help="regions to process")
    parser.set_defaults(mode=SYNC)
    return parser


# --------------------------------------------------------------------------- logging


def configure_logging(stream: TextIO, debug: bool = False) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def report_unexpected(region: str, error: BaseException, debug: bool) -> None:
    """A bug: one line, and the traceback only with --debug."""
    logger.error("%s: unexpected error: %s: %s", region, type(error).__name__, error)
    if debug:
        logger.error("%s", "".join(traceback.format_exception(error)))


# --------------------------------------------------------------------------- one region


@dataclass
class RegionOutcome:
    region: str
    ok: bool
    rows: list[str]


def run_region(
    engine: GlanceSync, region: str, mode: str, backup_dir: Path | None, debug: bool
) -> RegionOutcome:
    """Do ``mode`` for one region; expected failures are logged, never raised."""
    rows: list[str] = []
    try:
        if mode == STATUS:
            rows = [entry.row() for entry in engine.region_status(region)]
        elif mode == BACKUP:
            assert backup_dir is not None
            write_backup(engine, region, backup_dir)
        else:
            logger.info("======%s", region)
            engine.sync_region(region, dry_run=mode == DRY_RUN)
    except GlanceSyncError as error:
        logger.error("%s: %s", region, error)
        return RegionOutcome(region, False, rows)
    except Exception as error:  # noqa: BLE001 - a bug must not stop the other regions
        report_unexpected(region, error, debug)
        return RegionOutcome(region, False, rows)
    return RegionOutcome(region, True, rows)


def write_backup(engine: GlanceSync, region: str, directory: Path) -> None:
    images = engine.list_region(region)
    with open(directory / backup_file_name(region), "w", encoding="utf-8", newline="") as out:
        write_csv(out, images)


def write_rows(rows: list[str], out: TextIO) -> None:
    if rows:
        out.write("\n".join(rows) + "\n")


def _finished(outcome: RegionOutcome) -> None:
    suffix = "" if outcome.ok else " with errors"
    logger.info("Region %s has finished%s", outcome.region, suffix)


# --------------------------------------------------------------------------- parallel

_CHILD_ENGINE: GlanceSync | None = None


def _child_run(
    region: str, mode: str, backup_dir: Path | None, log_path: str, debug: bool
) -> RegionOutcome:
    """Runs in a forked child: its log goes to the region's own file."""
    assert _CHILD_ENGINE is not None
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _CHILD_ENGINE.forget_connections()
    with open(log_path, "a", encoding="utf-8") as log:
        configure_logging(log, debug)
        return run_region(_CHILD_ENGINE, region, mode, backup_dir, debug)


def _fresh_log_dir() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    for attempt in range(1000):
        path = Path(f"sync_{stamp}" + (f"_{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise GlanceSyncError("cannot create a fresh sync_<date> log directory")


def _outcome(future: concurrent.futures.Future, region: str) -> RegionOutcome:
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a child that died
        logger.error("%s: the child process failed: %s", region, error)
        return RegionOutcome(region, False, [])


def _stop_children(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """On Ctrl-C or SIGTERM: start no more regions and stop the running ones.

    A child receives SIGTERM, which interrupts it like Ctrl-C, so an upload in flight
    deletes its half-made image before the child ends.
    """
    # The executor forgets its processes on shutdown: take them first.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def run_parallel(
    engine: GlanceSync,
    regions: list[str],
    mode: str,
    backup_dir: Path | None,
    max_children: int,
    debug: bool,
) -> list[RegionOutcome]:
    global _CHILD_ENGINE
    log_dir = _fresh_log_dir()
    logger.info("Logs of each region in %s/", log_dir)
    _CHILD_ENGINE = engine
    context = multiprocessing.get_context("fork")
    outcomes: dict[str, RegionOutcome] = {}
    with concurrent.futures.ProcessPoolExecutor(max_children, mp_context=context) as pool:
        futures = {
            pool.submit(
                _child_run,
                region,
                mode,
                backup_dir,
                str(log_dir / f"{region}.txt"),
                debug,
            ): region
            for region in regions
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                outcome = _outcome(future, futures[future])
                outcomes[outcome.region] = outcome
                _finished(outcome)
        except KeyboardInterrupt:
            _stop_children(pool)
            raise
    logger.info("All is done.")
    return [outcomes[region] for region in regions]


# --------------------------------------------------------------------------- modes


def show_regions(engine: GlanceSync, out: TextIO) -> ExitStatus:
    names: list[str] = []
    status = ExitStatus.OK
    targets = [MASTER] + [name for name in engine.config.targets if name != MASTER]
    for target in targets:
        try:
            names.extend(engine.expand_regions([f"{target}:"]))
        except GlanceSyncError as error:
            logger.error("target %s: %s", target, error)
            status = ExitStatus.REGION_FAILED
    print(" ".join(names), file=out)
    return status


def _new_backup_dir() -> Path:
    path = Path(f"backup_glance_{datetime.datetime.now().isoformat()}")
    path.mkdir()
    return path


def run_mode(engine: GlanceSync, args: argparse.Namespace, out: TextIO) -> ExitStatus:
    if args.mode == REGIONS:
        return show_regions(engine, out)
    regions = engine.expand_regions(args.regions)
    backup_dir = None
    if args.mode == BACKUP:
        backup_dir = _new_backup_dir()
        regions = [engine.config.master_region] + [
            r for r in regions if r != engine.config.master_region
        ]
    if args.mode not in DATA_MODES:
        logger.info("======Master is %s", engine.config.master_region)
    with contextlib.suppress(GlanceSyncError):
        # Listed once, before any region (and before --parallel forks); a failure is
        # reported by every region that needs the master.
        engine.master_images()
    if args.parallel:
        outcomes = run_parallel(
            engine,
            regions,
            args.mode,
            backup_dir,
            engine.config.max_children,
            args.debug,
        )
    else:
        outcomes = []
        for region in regions:
            outcome = run_region(engine, region, args.mode, backup_dir, args.debug)
            outcomes.append(outcome)
            if args.mode != STATUS:
                _finished(outcome)
            write_rows(outcome.rows, out)
            outcome.rows = []  # printed: do not keep every region's rows in memory
    if args.parallel:
        for outcome in outcomes:
            write_rows(outcome.rows, out)
    if backup_dir is not None:
        logger.info("Backup written to %s", backup_dir)
    failed = [outcome.region for outcome in outcomes if not outcome.ok]
    return ExitStatus.REGION_FAILED if failed else ExitStatus.OK


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    facade_factory: FacadeFactory | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``sync.py``; everything the outside world provides can be injected."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    environ = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    configure_logging(err if args.mode in DATA_MODES else out, args.debug)
    # SIGTERM (cron timeouts, systemd) ends the run like Ctrl-C: exit status 130.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
    engine = None
    try:
        config = load_config(environ, args.config)
        for warning in config.warnings:
            logger.warning("%s", warning)
        engine = GlanceSync(config, (facade_factory or default_facade_factory)(environ))
        return run_mode(engine, args, out)
    except GlanceSyncError as error:
        for line in getattr(error, "problems", None) or [str(error)]:
            print(f"ERROR: {line}", file=err)
        return error.exit_status
    except KeyboardInterrupt:
        print("Interrupted.", file=err)
        return ExitStatus.INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a bug: one line, the traceback on --debug
        print(f"ERROR: unexpected error: {type(error).__name__}: {error}", file=err)
        if args.debug:
            traceback.print_exception(error, file=err)
        return ExitStatus.REGION_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if engine is not None:
            engine.close()
        out.flush()


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
