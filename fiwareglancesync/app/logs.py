"""Logging of the service: a logging config file, or a rotating ``glancesync-api.log``.

Lookup, first hit wins: ``GLANCESYNC_LOGGING_SETTINGS_FILE`` (must exist),
``/etc/fiware.d/fiware-glancesync-logging.cfg``, else a rotating file in the current
directory (3 backups) plus warnings on standard error. Whatever the handlers, a filter
masks anything that looks like a token or a password, and the HTTP libraries that would
log request headers and bodies are kept at WARNING.
"""

from __future__ import annotations

import logging
import logging.config
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, Mapping

from fiwareglancesync.app.settings import SettingsError

LOGGING_FILE_VARIABLE = "GLANCESYNC_LOGGING_SETTINGS_FILE"
DEFAULT_LOGGING_FILE = "/etc/fiware.d/fiware-glancesync-logging.cfg"
LOG_FILE_NAME = "glancesync-api.log"
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s [%(process)d] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
QUIET_LIBRARIES = ("keystoneauth", "urllib3", "requests", "glanceclient", "stevedore")

_SECRET_PATTERNS = (
    # Header values: X-Auth-Token: abc, X-Subject-Token=abc, 'x-auth-token': 'abc'
    re.compile(r"(?i)(x-(?:auth|subject|service)-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    # JSON or Python literals with a password: "password": "secret"
    re.compile(
        r"(?i)(['\"]?(?:password|adm_pass|os_password|[a-z_]*secret|token)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
    ),
    # Fernet tokens, wherever they appear.
    re.compile(r"()\bgAAAAA[0-9A-Za-z_\-=]{20,}"),
    # A password in a URL: scheme://user:password@host
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)"),
)


# A known secret that could be an ordinary word (short and letters only, like "admin")
# is masked only where the patterns above find it: elsewhere it is a user or project
# name, not the password, and must not be rewritten.
MIN_MASKED_WORD = 8


def _maskable(secret: str) -> bool:
    return len(secret) >= MIN_MASKED_WORD or not secret.isalpha()


def _secret_pattern(secret: str) -> re.Pattern[str]:
    # The whole secret, never a piece of a longer word.
    return re.compile(rf"(?<![\w]){re.escape(secret)}(?![\w])")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    for secret in secrets:
        if secret and _maskable(secret) and secret in text:
            text = _secret_pattern(secret).sub("***", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's text so no token or known password reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def find_logging_file(environ: Mapping[str, str]) -> str | None:
    explicit = environ.get(LOGGING_FILE_VARIABLE)
    if explicit:
        if not os.path.isfile(explicit):
            raise SettingsError([f"{LOGGING_FILE_VARIABLE}={explicit} is not a file"])
        return explicit
    return DEFAULT_LOGGING_FILE if os.path.isfile(DEFAULT_LOGGING_FILE) else None


def _default_handlers() -> list[logging.Handler]:
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    rotating = logging.handlers.RotatingFileHandler(
        LOG_FILE_NAME,
        maxBytes=LOG_FILE_BYTES,
        backupCount=LOG_FILE_BACKUPS,
        encoding="utf-8",
        delay=True,  # made at the first record: a start that fails leaves no empty file
    )
    rotating.setFormatter(formatter)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(formatter)
    return [rotating, console]


def configure_logging(
    environ: Mapping[str, str], level: str = "info", secrets: Iterable[str] = ()
) -> str:
    """Set up the handlers once per process; return where the log goes."""
    path = find_logging_file(environ)
    root = logging.getLogger()
    if path:
        try:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise SettingsError([f"logging settings {path} cannot be used: {error}"]) from None
        where = path
    else:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in _default_handlers():
            root.addHandler(handler)
        root.setLevel(level.upper())
        where = os.path.abspath(LOG_FILE_NAME)
    redactor = RedactingFilter(secrets)
    for handler in root.handlers:
        handler.addFilter(redactor)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    return where
