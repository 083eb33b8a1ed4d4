"""``run.py``: subcommands, options over settings, and clear start-up errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from api_support import EXAMPLES, REPO
from flask import Flask

from fiwareglancesync.app.cli import main
from fiwareglancesync.app.server import GunicornServer

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    settings = tmp_path / "fiware-glancesync.cfg"
    settings.write_text(
        "[openstack]\nKEYSTONE_URL = http://127.0.0.1:9/v3\nADM_USER = svc\n"
        "ADM_PASS = pw\nADM_TENANT_NAME = service\n"
        "[glancesync]\nPORT = 8181\n[gunicorn]\nWORKERS = 2\n"
    )
    return {
        "GLANCESYNC_SETTINGS_FILE": str(settings),
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
        "GLANCESYNC_CONFIG": str(EXAMPLES / "glancesync.conf"),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(tmp_path / "store"),
    }


def test_without_a_command_it_shows_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], {}) == 2
    usage = capsys.readouterr().err
    for command in ("gunicornserver", "shell", "db", "runserver"):
        assert command in usage


def test_db_upgrade_creates_the_schema(environ: dict[str, str], tmp_path: Path) -> None:
    assert main(["db", "upgrade"], environ) == 0
    assert (tmp_path / "glancesyncapi.db").exists()
    assert main(["db", "current"], environ) == 0
    assert main(["db", "history"], environ) == 0


def test_an_unreachable_database_is_one_line_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://gs:hunter2@127.0.0.1:1/gs"}
    assert main(["db", "upgrade"], environ) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1 and "Connection refused" in lines[0]
    assert "hunter2" not in err and "Traceback" not in err


def test_db_help_is_flask_migrates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "--help"], {}) == 0
    out = capsys.readouterr().out
    for command in ("upgrade", "downgrade", "migrate", "current", "history"):
        assert command in out


def test_missing_settings_are_one_clear_error_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["runserver"], {"GLANCESYNCAPP_DATABASE_PATH": str(tmp_path)}) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("ERROR: ") for line in lines)
    assert any("KEYSTONE_URL" in line for line in lines)
    assert "Traceback" not in "\n".join(lines)


def test_a_database_that_was_not_upgraded_stops_the_start(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gunicornserver"], environ) == 2
    assert "run.py db upgrade" in capsys.readouterr().err


def test_a_missing_logging_file_stops_the_start(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    environ["GLANCESYNC_LOGGING_SETTINGS_FILE"] = "/nonexistent/logging.cfg"
    assert main(["runserver"], environ) == 2
    assert "GLANCESYNC_LOGGING_SETTINGS_FILE" in capsys.readouterr().err


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the servers would have been started with (nothing is started)."""
    calls: dict[str, Any] = {}

    def flask_run(self: Flask, **options: Any) -> None:
        calls["runserver"] = options

    def gunicorn_run(self: GunicornServer) -> None:
        calls["gunicorn"] = self.options
        calls["cfg"] = self.cfg
        calls["app_factory"] = self.app_factory  # what every worker calls

    monkeypatch.setattr(Flask, "run", flask_run)
    monkeypatch.setattr(GunicornServer, "run", gunicorn_run)
    return calls


def test_runserver_uses_the_settings_and_no_debugger(
    environ: dict[str, str], served: dict[str, Any], tmp_path: Path
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    assert main(["runserver"], environ) == 0
    options = served["runserver"]
    assert (options["host"], options["port"]) == ("127.0.0.1", 8181)
    assert options["debug"] is False and options["use_debugger"] is False
    assert options["use_reloader"] is False
    assert (tmp_path / "glancesync-api.log").exists()


def test_runserver_options_win(environ: dict[str, str], served: dict[str, Any]) -> None:
    assert main(["db", "upgrade"], environ) == 0
    argv = ["runserver", "-t", "127.0.0.2", "-p", "9999", "--threaded", "--debug", "-r"]
    assert main(argv, environ) == 0
    options = served["runserver"]
    assert (options["host"], options["port"], options["threaded"]) == ("127.0.0.2", 9999, True)
    assert options["use_debugger"] is True and options["use_reloader"] is False


def test_gunicornserver_options_win_over_the_settings(
    environ: dict[str, str], served: dict[str, Any]
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    assert main(["gunicornserver"], environ) == 0
    assert served["gunicorn"]["bind"] == "127.0.0.1:8181"
    assert served["cfg"].workers == 2
    assert main(["gunicornserver", "-H", "127.0.0.3", "-p", "8282", "-w", "3"], environ) == 0
    assert served["gunicorn"]["bind"] == "127.0.0.3:8282"
    assert served["cfg"].workers == 3
    assert served["cfg"].worker_class_str == "gthread"


def test_every_worker_reports_the_time_main_started_the_server(
    environ: dict[str, str], served: dict[str, Any]
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert main(["gunicornserver"], environ) == 0
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    workers = [served["app_factory"]() for _ in range(2)]
    (started,) = {worker.extensions["glancesync"].started_at for worker in workers}
    assert before <= started <= after
    assert main(["gunicornserver"], environ) == 0  # a new server: a new start time
    assert served["app_factory"]().extensions["glancesync"].started_at > started


@pytest.mark.parametrize("flag", ["-t", "-H", "--host"])
def test_both_servers_take_the_same_host_option(
    environ: dict[str, str], served: dict[str, Any], flag: str
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    assert main(["runserver", flag, "127.0.0.4"], environ) == 0
    assert served["runserver"]["host"] == "127.0.0.4"
    assert main(["gunicornserver", flag, "127.0.0.5"], environ) == 0
    assert served["gunicorn"]["bind"] == "127.0.0.5:8181"


def test_run_py_is_a_thin_shim(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "runserver", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0
    assert "--no-reload" in done.stdout and "--threaded" in done.stdout


def test_shell_runs_inside_the_application(environ: dict[str, str], tmp_path: Path) -> None:
    assert main(["db", "upgrade"], environ) == 0
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "shell"],
        input="print('tasks:', db.session.query(Task).count())\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**environ, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "tasks: 0" in done.stdout


def test_a_failed_start_leaves_no_empty_log_file(tmp_path: Path) -> None:
    """The log file is made at its first record, not when the handler is."""
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "gunicornserver"],
        cwd=tmp_path,
        env={"GLANCESYNC_CONFIG": str(tmp_path / "missing.conf"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot read configuration file" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_what_the_service_leaves_in_a_clone_is_ignored_by_git() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert {"glancesyncapi.db", "glancesync-api.log"} <= set(ignored)


def test_gunicornserver_can_listen_on_a_unix_socket(
    environ: dict[str, str], served: dict[str, Any], tmp_path: Path
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    path = tmp_path / "api.sock"
    assert main(["gunicornserver", "--socket", str(path)], environ) == 0
    assert served["gunicorn"]["bind"] == f"unix:{path}"
    assert served["cfg"].address == [str(path)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--socket", "{tmp}/no/such/dir/api.sock"],
            "the directory {tmp}/no/such/dir does not exist",
        ),
        (["--socket", "{tmp}/glancesync-api.cfg"], "exists and is not a socket"),
        (["--socket", "{tmp}/api.sock", "-p", "8282"], "--socket cannot go with --host or --port"),
        (["--socket", "{tmp}/api.sock", "-H", "127.0.0.1"], "--socket cannot go with"),
    ],
)
def test_a_bad_socket_is_one_line_and_exit_2(
    environ: dict[str, str],
    served: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert main(["db", "upgrade"], environ) == 0
    (tmp_path / "glancesync-api.cfg").write_text("not a socket\n")
    capsys.readouterr()
    argv = [word.format(tmp=tmp_path) for word in argv]
    assert main(["gunicornserver", *argv], environ) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("ERROR: "), errors
    assert message.format(tmp=tmp_path) in errors[0]
    assert "gunicorn" not in served
    assert (tmp_path / "glancesync-api.cfg").read_text() == "not a socket\n"
