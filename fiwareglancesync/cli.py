"""``sync.py``: parse the command line, set up the output, and hand over to :mod:`commands`.

Everything the outside world provides (arguments, environment, facades, streams) can be
injected into :func:`main`, which returns the exit status; an error becomes a message
and a status in one place, :func:`errors.explain`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from typing import TextIO

from fiwareglancesync import __version__
from fiwareglancesync.commands import RunOptions
from fiwareglancesync.commands import run as run_commands
from fiwareglancesync.config import load_config
from fiwareglancesync.console import (
    OutputClosed,
    configure_logging,
    program_name,
    silence_closed_output,
)
from fiwareglancesync.engine import FacadeFactory, GlanceSync
from fiwareglancesync.errors import ConfigError, ExitStatus, UsageError, explain
from fiwareglancesync.facades import facade_factory as default_facade_factory
from fiwareglancesync.modes import Mode

logger = logging.getLogger("fiwareglancesync")


def build_parser(prog: str = "sync.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
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
        const=Mode.DRY_RUN,
        help="do not upload actually the images: show what would be done, change nothing",
    )
    modes.add_argument(
        "--show-status",
        dest="mode",
        action="store_const",
        const=Mode.STATUS,
        help="do not sync, but show the synchronisation status (status,region,image rows)",
    )
    modes.add_argument(
        "--show-regions",
        dest="mode",
        action="store_const",
        const=Mode.REGIONS,
        help="do not sync, only show the available regions (of every target, on one line)",
    )
    modes.add_argument(
        "--make-backup",
        "--make-backups",
        dest="mode",
        action="store_const",
        const=Mode.BACKUP,
        help="do not sync, make a backup of the regions' metadata (in backup_glance_<date>/)",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("csv", "json", "html"),
        default="csv",
        help="with --show-status: status,region,image rows (csv, the default), a JSON "
        "report, or a self-contained HTML page of images by regions",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write the run's figures to PATH in Prometheus' text format (for "
        "node_exporter's textfile collector), replacing it at once",
    )
    parser.add_argument(
        "--backup-format",
        type=int,
        choices=(1, 2),
        help="with --make-backup: write backup files in format 1 (the original's nine "
        "columns, without the Glance v2 fields) or 2; by default the smallest format that "
        "holds every field",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of bugs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(mode=Mode.SYNC)
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; regions given after ``--config`` are regions too.

    ``--config`` takes every word after it, as in the original tool. A word without
    ``=`` cannot be an override, so it is taken for what the operator meant: a region.
    Without ``argv`` (the real command line), help and errors name the program as typed.
    """
    parser = build_parser(
        "sync.py" if argv is not None else program_name(__file__, "fiwareglancesync.cli", "sync.py")
    )
    args = parser.parse_args(argv)
    if args.output_format != "csv" and args.mode is not Mode.STATUS:
        parser.error("--format goes with --show-status")
    if args.backup_format is not None and args.mode is not Mode.BACKUP:
        parser.error("--backup-format goes with --make-backup")
    overrides = [item for item in args.config if "=" in item]
    args.regions_from_config = [item for item in args.config if "=" not in item]
    args.regions = [*args.regions, *args.regions_from_config]
    args.config = overrides
    return args


def _unknown_region_hint(error: UsageError, args: argparse.Namespace) -> UsageError:
    """The same error, saying why a word given to --config was taken for a region."""
    words = [word for word in args.regions_from_config if f"unknown region {word} " in str(error)]
    if not words:
        return error
    return UsageError(f"{error} (--config {words[0]} has no '=': it was taken for a region)")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(
    args: argparse.Namespace, environ: Mapping[str, str], factory: FacadeFactory | None, out: TextIO
) -> ExitStatus:
    try:
        config = load_config(environ, args.config)
    except ConfigError as error:
        for warning in error.warnings:  # before the problems that stop the run
            logger.warning("%s", warning)
        raise
    for warning in config.warnings:
        logger.warning("%s", warning)
    if factory is None:
        facades = default_facade_factory(environ, read_only=args.mode.read_only)
    else:
        facades = factory(environ)
    engine = GlanceSync(config, facades)
    try:
        options = RunOptions(
            args.mode,
            tuple(args.regions),
            args.parallel,
            args.debug,
            args.output_format,
            args.metrics_file,
            args.backup_format,
        )
        try:
            return run_commands(engine, options, out)
        except UsageError as error:
            raise _unknown_region_hint(error, args) from None
    finally:
        engine.close()


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
    configure_logging(err if args.mode.prints_data else out, args.debug)
    # SIGTERM (cron timeouts, systemd) ends the run like Ctrl-C: exit status 130.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
    try:
        return _run(args, environ, facade_factory, out)
    except OutputClosed:
        silence_closed_output(out)
        return ExitStatus.OK
    except BaseException as error:  # noqa: BLE001 - every error ends here, as one message
        explained = explain(error)
        prefix = "" if isinstance(error, KeyboardInterrupt) else "ERROR: "
        for line in explained.lines:
            print(f"{prefix}{line}", file=err)
        if explained.bug and args.debug:
            traceback.print_exception(error, file=err)
        return explained.exit_status
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(BrokenPipeError, ValueError):
            out.flush()


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
