"""``glancesync-agent``: parse the command line, set up logging, signals and metrics, run.

Like ``sync.py``'s :mod:`fiwareglancesync.cli`: everything the outside world provides
(arguments, environment, facades, the owner of the regions, streams) can be injected
into :func:`main`, which returns the exit status; an error becomes one line and a
status through :func:`errors.explain`. SIGTERM stops the agent (exit status 0), SIGHUP
reloads its configuration, Ctrl-C interrupts it (130).
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
from collections.abc import Iterator, Mapping, Sequence
from typing import TextIO

from fiwareglancesync import __version__
from fiwareglancesync.agent.metrics import AgentMetrics
from fiwareglancesync.agent.owner import OwnerFactory, default_owner
from fiwareglancesync.agent.service import Agent
from fiwareglancesync.config import Config, load_config
from fiwareglancesync.console import configure_logging, program_name
from fiwareglancesync.engine import FacadeFactory
from fiwareglancesync.errors import ConfigError, ExitStatus, explain
from fiwareglancesync.facades import facade_factory as default_facade_factory

logger = logging.getLogger("fiwareglancesync")

PROG = "glancesync-agent"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {port}")
    return port


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Keep every region in step with the master, continuously: follow the "
        "master's changes (its notifications, or a listing every poll_interval seconds), "
        "sync just the changed images, and audit every region every audit_interval "
        "seconds.",
        epilog="Signals: SIGTERM stops (abandoning a transfer in progress cleanly), SIGHUP "
        "reloads the configuration. Exit status: 0 stopped, 2 usage or configuration "
        "error, 130 interrupted.",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override configuration options (e.g. main.poll_interval=10); a key "
        "without a section goes to [DEFAULT]. Kept across SIGHUP reloads.",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write the agent's figures to PATH in Prometheus' text format after each "
        "action (for node_exporter's textfile collector), replacing it at once",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="also serve the figures on http://127.0.0.1:PORT/metrics",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks of bugs, and the message bus library's own lines",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _load(environ: Mapping[str, str], overrides: Sequence[str]) -> Config:
    try:
        return load_config(environ, overrides)
    except ConfigError as error:
        for warning in error.warnings:
            logger.warning("%s", warning)
        raise


@contextlib.contextmanager
def _signals(agent: Agent) -> Iterator[None]:
    """SIGTERM and SIGHUP go to the agent while it runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: agent.request_stop()),
        signal.SIGHUP: signal.signal(signal.SIGHUP, lambda s, f: agent.request_reload()),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    factory: FacadeFactory | None,
    owner_factory: OwnerFactory,
) -> ExitStatus:
    config = _load(environ, args.config)
    for warning in config.warnings:
        logger.warning("%s", warning)
    facades = default_facade_factory(environ) if factory is None else factory(environ)
    metrics = AgentMetrics(args.metrics_file)
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    try:
        agent = Agent(
            config,
            facades,
            owner_factory,
            metrics,
            reload_config=lambda: load_config(environ, args.config),
            debug=args.debug,
        )
        with _signals(agent):
            agent.run()
    finally:
        metrics.close()
    return ExitStatus.OK


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    facade_factory: FacadeFactory | None = None,
    owner_factory: OwnerFactory = default_owner,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the agent until SIGTERM; everything the outside world provides can be injected.

    ``facade_factory`` is called with the environment (as in ``sync.py``'s main);
    ``owner_factory`` with the configuration, at start and at each reload.
    """
    err = stderr or sys.stderr
    environ = os.environ if environ is None else environ
    prog = PROG if argv is not None else program_name(__file__, "fiwareglancesync.agent.cli", PROG)
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    configure_logging(stdout or sys.stdout, args.debug)
    try:
        return _run(args, environ, facade_factory, owner_factory)
    except BaseException as error:  # noqa: BLE001 - every error ends here, as one message
        explained = explain(error)
        prefix = "" if isinstance(error, KeyboardInterrupt) else "ERROR: "
        for line in explained.lines:
            print(f"{prefix}{line}", file=err)
        if explained.bug and args.debug:
            traceback.print_exception(error, file=err)
        return explained.exit_status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
