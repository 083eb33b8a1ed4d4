"""``run.py``: database migrations, the development server, gunicorn, a shell.

``main(argv) -> int`` does everything; ``run.py`` only calls it. Start-up problems
(settings, sync configuration, a database that was not upgraded) are printed as
``ERROR: ...`` lines and give exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fiwareglancesync.app.settings import Settings, SettingsError, load_settings
from fiwareglancesync.errors import ExitStatus, GlanceSyncError, explain

logger = logging.getLogger(__name__)
COMMANDS = ("gunicornserver", "shell", "db", "runserver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="The GlanceSync REST service.",
        epilog="Run `run.py db upgrade` once before serving, and after each upgrade.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    gunicorn = commands.add_parser(
        "gunicornserver", help="Run the service under gunicorn (production)."
    )
    # -H as in the original; -t too, so that both servers take the same host option.
    gunicorn.add_argument(
        "-H",
        "-t",
        "--host",
        help="IP address or hostname of the GlanceSync server (settings: HOST)",
    )
    gunicorn.add_argument("-p", "--port", type=int, help="port to listen on (settings: PORT)")
    gunicorn.add_argument(
        "-w", "--workers", type=int, help="worker processes, usually 2 * cores + 1"
    )
    # Behind a reverse proxy: a unix socket that only the proxy's user can reach.
    gunicorn.add_argument(
        "--socket",
        metavar="PATH",
        help="listen on this unix socket instead of HOST:PORT (for a reverse proxy)",
    )
    commands.add_parser("shell", help="A Python shell inside the application context.")
    commands.add_parser("db", help="Database migrations: `run.py db upgrade`, `db --help`.")
    _runserver_parser(commands.add_parser("runserver", help="Run the development server."))
    return parser


def _runserver_parser(runserver: argparse.ArgumentParser) -> None:
    runserver.add_argument("-t", "-H", "--host", help="address to listen on (settings: HOST)")
    runserver.add_argument("-p", "--port", type=int, help="port to listen on (settings: PORT)")
    runserver.add_argument("--threaded", action="store_true", help="a thread per request")
    runserver.add_argument("--processes", type=int, default=1, help="a process per request")
    runserver.add_argument(
        "--passthrough-errors", action="store_true", help="let errors reach the server"
    )
    debug = runserver.add_mutually_exclusive_group()
    debug.add_argument(
        "--debug",
        dest="debug",
        action="store_true",
        help="interactive debugger and reloader (never on unless asked for)",
    )
    debug.add_argument("-d", "--no-debug", dest="debug", action="store_false", help="default")
    reload = runserver.add_mutually_exclusive_group()
    reload.add_argument("--reload", dest="reload", action="store_true", default=None)
    reload.add_argument("-r", "--no-reload", dest="reload", action="store_false")
    runserver.set_defaults(debug=False)


# --------------------------------------------------------------------------- helpers


def _service_config(settings: Settings, started_at: dt.datetime) -> dict[str, Any]:
    return {"GLANCESYNC_SETTINGS": settings, "STARTED_AT": started_at}


def _service_app(settings: Settings, environ: Mapping[str, str], started_at: dt.datetime) -> Any:
    """An application ready to serve: settings checked and database upgraded."""
    from fiwareglancesync.app import create_app
    from fiwareglancesync.app.database import schema_problem

    app = create_app(_service_config(settings, started_at), environ)
    problem = schema_problem(app)
    if problem:
        raise SettingsError([problem])
    return app


def _click(command: Any, args: Sequence[str], prog: str, app_factory: Callable[[], Any]) -> int:
    """Run a Flask/Flask-Migrate click command against our application."""
    from flask.cli import ScriptInfo

    try:
        command.main(
            args=list(args),
            prog_name=prog,
            obj=ScriptInfo(create_app=app_factory, set_debug_flag=False),
        )
    except SystemExit as done:
        if done.code is None:
            return ExitStatus.OK
        return done.code if isinstance(done.code, int) else ExitStatus.REGION_FAILED
    return ExitStatus.OK


def _console_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")


# --------------------------------------------------------------------------- commands


def run_db(args: Sequence[str], environ: Mapping[str, str]) -> int:
    from alembic.util import CommandError
    from flask_migrate.cli import db as db_commands
    from sqlalchemy.exc import SQLAlchemyError

    from fiwareglancesync.app import create_app
    from fiwareglancesync.app.database import db_url

    settings = load_settings(environ)
    _console_logging()
    app = create_app({"DATABASE_ONLY": True, "GLANCESYNC_SETTINGS": settings}, environ)
    try:
        return _click(db_commands, args, "run.py db", lambda: app)
    except (SQLAlchemyError, CommandError) as error:
        # An unreachable database or a failed migration: one line, not a traceback.
        print(f"ERROR: database {db_url(app)}: {_first_line(error)}", file=sys.stderr)
        return ExitStatus.REGION_FAILED  # the command was right; the database did not let it work


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def run_shell(settings: Settings, environ: Mapping[str, str], started_at: dt.datetime) -> int:
    from flask.cli import shell_command

    app = _service_app(settings, environ, started_at)
    return _click(shell_command, [], "run.py shell", lambda: app)


def run_devserver(
    args: argparse.Namespace,
    settings: Settings,
    environ: Mapping[str, str],
    started_at: dt.datetime,
) -> int:
    from fiwareglancesync.app.server import on_exit, on_start

    _check_bind(settings, args.host or settings.host, environ)
    _file_logging(settings, environ)
    app = _service_app(settings, environ, started_at)
    on_start(app)
    atexit.register(on_exit, app)  # the syncs still running die with this process
    app.run(
        host=args.host or settings.host,
        port=args.port or settings.port,
        debug=args.debug,
        use_debugger=args.debug,
        use_reloader=args.debug if args.reload is None else args.reload,
        threaded=args.threaded,
        processes=args.processes,
        passthrough_errors=args.passthrough_errors,
    )
    return ExitStatus.OK


def run_gunicorn(
    args: argparse.Namespace,
    settings: Settings,
    environ: Mapping[str, str],
    started_at: dt.datetime,
) -> int:
    from fiwareglancesync.app.multiproc import prepare_multiprocess_directory

    bind = _gunicorn_bind(args, settings, environ)
    # Before the application (and prometheus_client) is imported: the workers' metrics.
    prepare_multiprocess_directory()
    from fiwareglancesync.app import create_app
    from fiwareglancesync.app.extensions import db
    from fiwareglancesync.app.server import GunicornServer

    where = _file_logging(settings, environ)
    checked = _service_app(settings, environ, started_at)  # fail here, once, not per worker
    with checked.app_context():
        db.engine.dispose()
    options = {
        "bind": bind,
        "workers": args.workers or settings.workers,
        "threads": settings.threads,
        "worker_class": "gthread",
        "timeout": settings.timeout,
        "loglevel": settings.loglevel,
        "proc_name": "glancesync-api",
    }
    logger.info("Starting gunicorn: %s; log in %s", options, where)
    # Every worker reports when the server started, not when the worker did.
    config = _service_config(settings, started_at)
    server = GunicornServer(lambda: create_app(config, environ), options)
    try:
        server.run()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else ExitStatus.OK
    return ExitStatus.OK


def _file_logging(settings: Settings, environ: Mapping[str, str]) -> str:
    from fiwareglancesync.app.logs import configure_logging

    return configure_logging(environ, settings.loglevel, settings.keystone.secrets())


def _gunicorn_bind(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> str:
    """gunicorn's ``bind``: ``HOST:PORT``, or ``unix:PATH`` with ``--socket``."""
    if not args.socket:
        _check_bind(settings, args.host or settings.host, environ)
        return f"{args.host or settings.host}:{args.port or settings.port}"
    problem = _socket_problem(args.socket)
    if problem:
        raise SettingsError([problem])
    # Only processes of this host can reach a unix socket: as local as loopback.
    _check_bind(settings, "localhost", environ)
    return f"unix:{args.socket}"


def _socket_problem(path: str) -> str | None:
    """What would make gunicorn fail late (retrying, or with a traceback) on ``path``."""
    where = os.path.abspath(path)
    folder = os.path.dirname(where)
    if not os.path.isdir(folder):
        return f"--socket {path}: the directory {folder} does not exist"
    try:
        mode = os.lstat(where).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(mode):
        # gunicorn replaces an old socket, but must not delete anything else.
        return f"--socket {path}: exists and is not a socket"
    return None


def _check_bind(settings: Settings, host: str, environ: Mapping[str, str]) -> None:
    """noauth only where nobody else can reach it: a --host option cannot widen it."""
    from fiwareglancesync.app.settings import noauth_problems
    from fiwareglancesync.facades import MOCK_PATH_VARIABLE

    refused = noauth_problems(settings, host, bool(environ.get(MOCK_PATH_VARIABLE)))
    if refused:
        raise SettingsError(refused)


def _report(error: GlanceSyncError) -> int:
    explained = explain(error)
    for line in explained.lines:
        print(f"ERROR: {line}", file=sys.stderr)
    return explained.exit_status


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # naive UTC, as stored
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        if argv[:1] == ["db"]:
            # Everything after `db` belongs to Flask-Migrate's own parser.
            return run_db(argv[1:], environ)
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:
            return int(done.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return ExitStatus.USAGE
        if args.command == "gunicornserver" and args.socket and (args.host or args.port):
            print("ERROR: --socket cannot go with --host or --port", file=sys.stderr)
            return ExitStatus.USAGE
        settings = load_settings(environ)
        if args.command == "shell":
            return run_shell(settings, environ, started_at)
        if args.command == "runserver":
            return run_devserver(args, settings, environ, started_at)
        return run_gunicorn(args, settings, environ, started_at)
    except GlanceSyncError as error:
        return _report(error)
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
