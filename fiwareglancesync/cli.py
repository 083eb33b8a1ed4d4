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
from fiwareglancesync.backup import PROJECT_IDS_FILE, backup_file_name, project_ids_text
from fiwareglancesync.config import MASTER, load_config
from fiwareglancesync.engine import FacadeFactory, GlanceSync, split_region
from fiwareglancesync.errors import ExitStatus, GlanceSyncError, RegionError
from fiwareglancesync.facades import facade_factory as default_facade_factory
from fiwareglancesync.image import write_csv
from fiwareglancesync.image import write_rows as write_csv_rows
from fiwareglancesync.regionlock import RegionBusy

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
        description="A tool to sync images from a master region to other regions: "
        "synchronise the Glance images of regions with the master region.",
        epilog="Regions: 'Region' (master target), 'target:Region', or 'target:' for every "
        "region of a target. Without regions: every region of the master target. Regions "
        "may come before or after --config (an item without '=' is a region). Exit "
        "status: 0 done, 1 a region failed, 2 usage or configuration error, 130 "
        "interrupted.",
    )
    parser.add_argument(
        "regions", nargs="*", metavar="region", help="region where the images are uploaded to"
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="sync several regions in parallel (up to max_children at once)",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override configuration options. (e.g. main.master_region=Valladolid "
        "metadata_condition=\"image.name=='name1'\"); a key without a section goes to "
        "[DEFAULT]",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--dry-run",
        dest="mode",
        action="store_const",
        const=DRY_RUN,
        help="do not upload actually the images: show what would be done, change nothing",
    )
    modes.add_argument(
        "--show-status",
        dest="mode",
        action="store_const",
        const=STATUS,
        help="do not sync, but show the synchronisation status (status,region,image rows)",
    )
    modes.add_argument(
        "--show-regions",
        dest="mode",
        action="store_const",
        const=REGIONS,
        help="do not sync, only show the available regions (of every target, on one line)",
    )
    modes.add_argument(
        "--make-backup",
        "--make-backups",
        dest="mode",
        action="store_const",
        const=BACKUP,
        help="do not sync, make a backup of the regions' metadata (in backup_glance_<date>/)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of bugs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(mode=SYNC)
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; regions given after ``--config`` are regions too.

    ``--config`` takes every word after it, as in the original tool. A word without
    ``=`` cannot be an override, so it is taken for what the operator meant: a region.
    """
    args = build_parser().parse_args(argv)
    overrides = [item for item in args.config if "=" in item]
    args.regions = [*args.regions, *(item for item in args.config if "=" not in item)]
    args.config = overrides
    return args


# --------------------------------------------------------------------------- logging


class OutputClosed(Exception):
    """Whoever read standard output went away (``sync.py --show-status | head``)."""


def silence_closed_output(stream: TextIO) -> None:
    """Point a closed standard output at /dev/null, so that nothing more fails on it.

    Python flushes standard output once more at exit; on a closed pipe that would print
    an error after the run is over.
    """
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # an in-memory stream (tests): nothing to redirect
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


class PipeSafeHandler(logging.StreamHandler):
    """A stream handler that goes quiet when its reader is gone, instead of failing.

    A sync whose output is piped into ``head`` or a pager that quits carries on: its
    work must not stop because nobody reads the log any more.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            silence_closed_output(self.stream)
            return
        super().handleError(record)


def configure_logging(stream: TextIO, debug: bool = False) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = PipeSafeHandler(stream)
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
    rows: list[tuple[str, str, str]]


def run_region(
    engine: GlanceSync, region: str, mode: str, backup_dir: Path | None, debug: bool
) -> RegionOutcome:
    """Do ``mode`` for one region; expected failures are logged, never raised."""
    rows: list[tuple[str, str, str]] = []
    try:
        if mode == STATUS:
            rows = [entry.fields() for entry in engine.region_status(region)]
        elif mode == BACKUP:
            assert backup_dir is not None
            write_backup(engine, region, backup_dir)
        else:
            logger.info("======%s", region)
            engine.sync_region(region, dry_run=mode == DRY_RUN)
    except RegionBusy as error:
        logger.warning("%s: %s", region, error)
        return RegionOutcome(region, False, rows)
    except GlanceSyncError as error:
        logger.error("%s: %s", region, error)
        if debug:
            logger.error("%s", "".join(traceback.format_exception(error)))
        return RegionOutcome(region, False, rows)
    except Exception as error:  # noqa: BLE001 - a bug must not stop the other regions
        report_unexpected(region, error, debug)
        return RegionOutcome(region, False, rows)
    return RegionOutcome(region, True, rows)


def _os_reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def write_backup(engine: GlanceSync, region: str, directory: Path) -> None:
    images = engine.list_region(region)
    path = directory / backup_file_name(region)
    try:
        with open(path, "w", encoding="utf-8", newline="") as out:
            write_csv(out, images)
    except OSError as error:
        raise RegionError(f"cannot write {path}: {_os_reason(error)}") from None


def write_project_ids(engine: GlanceSync, regions: list[str], directory: Path) -> None:
    """Record the project id of every target the backup used, beside its CSVs.

    The mock replays the backup with them, so the owners in the CSVs match the projects
    the configuration names. A target that cannot say (its Keystone is down) has already
    failed its regions; it is left out.
    """
    for target in dict.fromkeys(split_region(region)[0] for region in regions):
        with contextlib.suppress(GlanceSyncError):
            engine.project_id(target)
    ids = engine.known_project_ids()
    if not ids:
        return
    path = directory / PROJECT_IDS_FILE
    try:
        path.write_text(project_ids_text(ids), encoding="utf-8")
    except OSError as error:
        raise GlanceSyncError(f"cannot write {path}: {_os_reason(error)}") from None


def write_rows(rows: list[tuple[str, str, str]], out: TextIO) -> None:
    """Status rows, written by the csv module: a name with a comma stays one row."""
    if not rows:
        return
    try:
        write_csv_rows(out, rows)
        out.flush()
    except BrokenPipeError:
        raise OutputClosed from None


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
        except OSError as error:
            raise GlanceSyncError(
                f"cannot create the log directory {path} in the current directory: "
                f"{_os_reason(error)}"
            ) from None
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
    if not regions:
        logger.info("All is done.")
        return []
    # Never more processes than regions: each child does one region, then the pool ends.
    workers = max(1, min(max_children, len(regions)))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
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
            _target_failed(target, error)
            status = ExitStatus.REGION_FAILED
    try:
        print(" ".join(names), file=out)
        out.flush()
    except BrokenPipeError:
        raise OutputClosed from None
    return status


def _target_failed(target: str, error: GlanceSyncError) -> None:
    logger.error("target %s: its regions cannot be listed: %s", target, error)


def _new_backup_dir() -> Path:
    path = Path(f"backup_glance_{datetime.datetime.now().isoformat()}")
    try:
        path.mkdir()
    except OSError as error:
        raise GlanceSyncError(
            f"cannot create the backup directory {path} in the current directory: "
            f"{_os_reason(error)}"
        ) from None
    return path


def _regions_of_run(engine: GlanceSync, args: argparse.Namespace) -> tuple[list[str], bool]:
    """The regions to work on, and whether some target's regions could not be listed."""
    regions, failures = engine.expand_regions_isolated(args.regions)
    for target, error in failures:
        _target_failed(target, error)
    if args.mode == BACKUP:
        master = engine.config.master_region
        regions = [master] + [region for region in regions if region != master]
    return regions, bool(failures)


def _run_sequentially(
    engine: GlanceSync,
    regions: list[str],
    args: argparse.Namespace,
    backup_dir: Path | None,
    out: TextIO,
) -> list[RegionOutcome]:
    outcomes = []
    for region in regions:
        outcome = run_region(engine, region, args.mode, backup_dir, args.debug)
        outcomes.append(outcome)
        if args.mode != STATUS:
            _finished(outcome)
        write_rows(outcome.rows, out)
        outcome.rows = []  # printed: do not keep every region's rows in memory
    return outcomes


def run_mode(engine: GlanceSync, args: argparse.Namespace, out: TextIO) -> ExitStatus:
    if args.mode == REGIONS:
        return show_regions(engine, out)
    regions, targets_failed = _regions_of_run(engine, args)
    backup_dir = _new_backup_dir() if args.mode == BACKUP else None
    if args.mode not in DATA_MODES:
        logger.info("======Master is %s", engine.config.master_region)
    # Listed once, before any region (and before --parallel forks), with every target's
    # selection: a failure to list the master is reported by every region that needs it,
    # a metadata_condition past its limits stops the run here (configuration error).
    engine.select_for_regions(regions)
    if args.parallel:
        outcomes = run_parallel(
            engine, regions, args.mode, backup_dir, engine.config.max_children, args.debug
        )
        for outcome in outcomes:
            write_rows(outcome.rows, out)
    else:
        outcomes = _run_sequentially(engine, regions, args, backup_dir, out)
    if backup_dir is not None:
        write_project_ids(engine, regions, backup_dir)
        logger.info("Backup written to %s", backup_dir)
    failed = targets_failed or any(not outcome.ok for outcome in outcomes)
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
        args = parse_arguments(argv)
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
    except OutputClosed:
        silence_closed_output(out)
        return ExitStatus.OK
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
        with contextlib.suppress(BrokenPipeError, ValueError):
            out.flush()


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
