"""Logging: the rotating file, logging config files, and no secret in any log line."""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
from pathlib import Path

import pytest
from api_support import EngineSwitch, make_app, tokens
from flask import Flask

from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.logs import RedactingFilter, configure_logging, redact
from fiwareglancesync.app.settings import Settings, SettingsError

SECRET_TOKEN = "gAAAAABsecretTokenValue0123456789abcdefghij"


pytestmark = pytest.mark.usefixtures("restore_logging")


def test_default_is_a_rotating_file_with_three_backups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    where = configure_logging({}, "info")
    assert where == str(tmp_path / "glancesync-api.log")
    rotating = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.handlers.RotatingFileHandler)
    ]
    assert len(rotating) == 1 and rotating[0].backupCount == 3
    logging.getLogger("fiwareglancesync.app.test").info("hello from the test")
    rotating[0].flush()
    assert "hello from the test" in (tmp_path / "glancesync-api.log").read_text()


def test_a_logging_config_file_is_used(tmp_path: Path) -> None:
    log = tmp_path / "custom.log"
    config = tmp_path / "logging.cfg"
    config.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
        "[logger_root]\nlevel=INFO\nhandlers=file\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=('{log}',)\n"
        "[formatter_plain]\nformat=%(message)s\n"
    )
    assert configure_logging({"GLANCESYNC_LOGGING_SETTINGS_FILE": str(config)}) == str(config)
    logging.getLogger("x").info("password=hunter2 and token %s", SECRET_TOKEN)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log.read_text()
    assert "hunter2" not in text and SECRET_TOKEN not in text
    assert "password=***" in text


def test_a_missing_logging_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        configure_logging({"GLANCESYNC_LOGGING_SETTINGS_FILE": str(tmp_path / "none.cfg")})


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("X-Auth-Token: abcdef123", "abcdef123"),
        ("headers={'X-Subject-Token': 'abcdef123'}", "abcdef123"),
        ('{"password": "hunter2"}', "hunter2"),
        (f"token {SECRET_TOKEN} rejected", SECRET_TOKEN),
    ],
)
def test_redact_hides_tokens_and_passwords(line: str, hidden: str) -> None:
    assert hidden not in redact(line)


def test_the_filter_hides_the_configured_password_everywhere() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connect as %s", ("pw-1234",), None)
    RedactingFilter(["pw-1234"]).filter(record)
    assert record.getMessage() == "connect as ***"


@pytest.mark.parametrize(
    ("secret", "line", "expected"),
    [
        # A password that is an ordinary word is not the word wherever it appears.
        ("admin", "user admin on project admin", "user admin on project admin"),
        ("admin", "password=admin for user admin", "password=*** for user admin"),
        # A longer one is masked as a whole, never inside a longer word.
        ("s3cret-pass", "got s3cret-pass", "got ***"),
        ("longpassword", "longpasswords are better", "longpasswords are better"),
        ("", "nothing to hide", "nothing to hide"),
    ],
)
def test_masking_never_rewrites_unrelated_words(secret: str, line: str, expected: str) -> None:
    assert redact(line, [secret]) == expected


def test_a_password_in_a_url_is_hidden() -> None:
    assert redact("http://svc:hunter22@db:5432/x") == "http://svc:***@db:5432/x"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_requests_never_log_the_callers_token(
    sqlite_url: str, engines: EngineSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    identities = tokens(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    identities[SECRET_TOKEN] = identities["admin-token"]
    app: Flask = make_app(
        Settings(database_uri=sqlite_url),
        StaticVerifier(identities, service_project="project-id"),
        engines,
    )
    capture = Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        client = app.test_client()
        headers = {"X-Auth-Token": SECRET_TOKEN}
        client.get("/regions/Burgos", headers=headers)
        task_id = client.post("/regions/Leon", headers=headers).get_json()["taskId"]
        app.extensions["glancesync"].runner.wait(30)
        client.get(f"/regions/Leon/tasks/{task_id}", headers=headers)
        client.delete(f"/regions/Leon/tasks/{task_id}", headers=headers)
        client.get("/regions/Nowhere", headers=headers)
        client.get("/regions/Burgos", headers={"X-Auth-Token": SECRET_TOKEN + "x"})
    finally:
        root.removeHandler(capture)
    assert capture.lines, "the requests were logged"
    assert not [line for line in capture.lines if SECRET_TOKEN in line]
