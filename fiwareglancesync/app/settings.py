"""The service's settings: an INI file, environment variables and built-in defaults.

Lookup of the settings file, first hit wins: ``GLANCESYNC_SETTINGS_FILE`` (a path that does
not exist is an error), ``/etc/fiware.d/fiware-glancesync.cfg``, no file. Keystone settings
missing from the file fall back to the ``OS_*`` variables, as the command line does.
Every problem is collected and reported together as one :class:`SettingsError`; nothing
here reads ``os.environ`` itself: the caller passes the environment in.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fiwareglancesync import __version__
from fiwareglancesync.booleans import parse_bool
from fiwareglancesync.config import default_of
from fiwareglancesync.errors import ConfigError, os_reason
from fiwareglancesync.osenv import INSECURE_VARIABLE, from_environment

SETTINGS_FILE_VARIABLE = "GLANCESYNC_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = "/etc/fiware.d/fiware-glancesync.cfg"
DATABASE_PATH_VARIABLE = "GLANCESYNCAPP_DATABASE_PATH"
DATABASE_URI_VARIABLE = "SQLALCHEMY_DATABASE_URI"
EXTRA_CONFIG_VARIABLE = "GLANCESYNCAPP_CONFIG"
DATABASE_FILE_NAME = "glancesyncapi.db"

# [openstack] option -> (KeystoneSettings field, the credential piece whose OS_* variables
# (fiwareglancesync.osenv) stand in for it when the file does not set it).
KEYSTONE_OPTIONS: dict[str, tuple[str, str]] = {
    "KEYSTONE_URL": ("url", "keystone_url"),
    "ADM_USER": ("user", "user"),
    "ADM_PASS": ("password", "password"),
    "ADM_TENANT_ID": ("project_id", "tenant_id"),
    "ADM_TENANT_NAME": ("project_name", "tenant"),
    "USER_DOMAIN_NAME": ("user_domain_name", "user_domain_name"),
    "PROJECT_DOMAIN_NAME": ("project_domain_name", "project_domain_name"),
    "CACERT": ("cacert", "cacert"),
}


class SettingsError(ConfigError):
    """The service cannot start: every problem found, one line each."""


@dataclass(frozen=True)
class KeystoneSettings:
    """The service's own Keystone v3 credential, used to validate callers' tokens."""

    url: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    project_id: str | None = None
    project_name: str | None = None
    # The same Keystone defaults as a sync target's.
    user_domain_name: str = default_of("user_domain_name")
    project_domain_name: str = default_of("project_domain_name")
    cacert: str | None = default_of("cacert")
    insecure: bool = default_of("insecure")

    def missing(self) -> list[str]:
        """The options that must be set before tokens can be validated."""
        names = [("KEYSTONE_URL", self.url), ("ADM_USER", self.user), ("ADM_PASS", self.password)]
        missing = [name for name, value in names if not value]
        if not (self.project_id or self.project_name):
            missing.append("ADM_TENANT_ID or ADM_TENANT_NAME")
        return missing


@dataclass(frozen=True)
class Settings:
    """Everything the settings file and the environment say about the service."""

    keystone: KeystoneSettings = KeystoneSettings()
    host: str = "127.0.0.1"
    port: int = 8080
    owner: str = "FIWARE"
    version: str = __version__
    updated: str = "2025-01-01"
    status: str = "SUPPORTED"
    api_info_url: str = "http://fiware-glancesync.readthedocs.org/en/latest/"
    role: str = "admin"
    token_cache_seconds: float = 30.0
    # How long a token Keystone rejected is answered 401 without asking again (0: never).
    rejected_token_cache_seconds: float = 5.0
    # Authorization (fiwareglancesync.app.policy): an operator's oslo.policy file, the
    # projects besides the service's own whose admins are GlanceSync admins, and whether
    # a system-scoped admin is one.
    policy_file: str | None = None
    allowed_projects: tuple[str, ...] = ()
    allow_system_scope: bool = False
    # How long the master's listing is reused by the requests of a worker (0: never).
    master_cache_seconds: float = 2.0
    task_lease_seconds: float = 60.0
    workers: int = 3
    threads: int = 4
    loglevel: str = "info"
    timeout: int = 120
    # The current directory when the settings are made, not when this module is imported.
    database_uri: str = field(
        default_factory=lambda: "sqlite:///" + os.path.abspath(DATABASE_FILE_NAME)
    )
    extra_config: str | None = None
    source: str | None = None


# [section] OPTION -> (Settings field, parser)
_SERVICE_OPTIONS: dict[tuple[str, str], tuple[str, Callable[[str], Any]]] = {
    ("glancesync", "HOST"): ("host", str),
    ("glancesync", "PORT"): ("port", int),
    ("glancesync", "OWNER"): ("owner", str),
    ("glancesync", "VERSION"): ("version", str),
    ("glancesync", "UPDATED"): ("updated", str),
    ("glancesync", "STATUS"): ("status", str),
    ("glancesync", "API_INFO_URL"): ("api_info_url", str),
    ("glancesync", "ROLE"): ("role", str),
    ("glancesync", "TOKEN_CACHE_SECONDS"): ("token_cache_seconds", float),
    ("glancesync", "REJECTED_TOKEN_CACHE_SECONDS"): ("rejected_token_cache_seconds", float),
    ("glancesync", "POLICY_FILE"): ("policy_file", str),
    ("glancesync", "ALLOWED_PROJECTS"): (
        "allowed_projects",
        lambda text: tuple(text.replace(",", " ").split()),
    ),
    ("glancesync", "ALLOW_SYSTEM_SCOPE"): ("allow_system_scope", parse_bool),
    ("glancesync", "MASTER_CACHE_SECONDS"): ("master_cache_seconds", float),
    ("glancesync", "TASK_LEASE_SECONDS"): ("task_lease_seconds", float),
    ("gunicorn", "WORKERS"): ("workers", int),
    ("gunicorn", "THREADS"): ("threads", int),
    ("gunicorn", "LOGLEVEL"): ("loglevel", str),
    ("gunicorn", "TIMEOUT"): ("timeout", int),
}
_POSITIVE = {"port", "workers", "threads", "timeout", "task_lease_seconds"}
_NOT_NEGATIVE = {"rejected_token_cache_seconds", "token_cache_seconds", "master_cache_seconds"}
_LOGLEVELS = {"debug", "info", "warning", "error", "critical"}


def find_settings_file(environ: Mapping[str, str]) -> str | None:
    explicit = environ.get(SETTINGS_FILE_VARIABLE)
    if explicit:
        return explicit
    return DEFAULT_SETTINGS_FILE if os.path.isfile(DEFAULT_SETTINGS_FILE) else None


def _read_file(path: str, problems: list[str]) -> configparser.ConfigParser:
    # Option names are case-insensitive: the original files spell them in upper case.
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as stream:
            parser.read_file(stream, source=path)
    except FileNotFoundError:
        problems.append(f"settings file {path} ({SETTINGS_FILE_VARIABLE}) does not exist")
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        problems.append(f"settings file {path} cannot be read: {error}")
    return parser


def _get(parser: configparser.ConfigParser, section: str, option: str) -> str | None:
    if not parser.has_section(section):
        return None
    value = parser.get(section, option.lower(), fallback=None)
    return value.strip() if value is not None and value.strip() else None


def _keystone(
    parser: configparser.ConfigParser, environ: Mapping[str, str], problems: list[str]
) -> KeystoneSettings:
    """What the file says, else the OS_* variables; unset fields keep their defaults."""
    values: dict[str, Any] = {}
    for option, (name, piece) in KEYSTONE_OPTIONS.items():
        value = _get(parser, "openstack", option) or from_environment(piece, environ)
        if value is not None:
            values[name] = value
    insecure = _insecure(parser, environ, problems)
    if insecure is not None:
        values["insecure"] = insecure
    return KeystoneSettings(**values)


def _insecure(
    parser: configparser.ConfigParser, environ: Mapping[str, str], problems: list[str]
) -> bool | None:
    """INSECURE, else OS_INSECURE; None when neither is set (or is bad: then a problem)."""
    where, text = "[openstack] INSECURE", _get(parser, "openstack", "INSECURE")
    if text is None:
        where, text = INSECURE_VARIABLE, environ.get(INSECURE_VARIABLE, "").strip()
    if not text:
        return None
    try:
        return parse_bool(text)
    except ValueError as error:
        problems.append(f"{where} = {error}")
        return None


def _service_values(parser: configparser.ConfigParser, problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for (section, option), (name, convert) in _SERVICE_OPTIONS.items():
        text = _get(parser, section, option)
        if text is None:
            continue
        try:
            value = convert(text)
        except ValueError:
            kind = "a yes or no" if convert is parse_bool else "a valid number"
            problems.append(f"[{section}] {option} = {text!r} is not {kind}")
            continue
        if name == "policy_file" and not os.path.isfile(value):
            problems.append(f"[{section}] {option} = {text}: no such file")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"[{section}] {option} = {text!r} is not a finite number")
            continue
        if name in _POSITIVE and value <= 0:
            problems.append(f"[{section}] {option} must be greater than zero, not {text}")
            continue
        if name in _NOT_NEGATIVE and value < 0:
            problems.append(f"[{section}] {option} must be zero or more, not {text}")
            continue
        if name == "loglevel" and value.lower() not in _LOGLEVELS:
            problems.append(f"[{section}] {option} must be one of {', '.join(sorted(_LOGLEVELS))}")
            continue
        values[name] = value.lower() if name == "loglevel" else value
    return values


def database_uri(environ: Mapping[str, str], problems: list[str]) -> str:
    """SQLALCHEMY_DATABASE_URI wins; else glancesyncapi.db in GLANCESYNCAPP_DATABASE_PATH/cwd."""
    uri = environ.get(DATABASE_URI_VARIABLE)
    if uri:
        return uri
    directory = environ.get(DATABASE_PATH_VARIABLE) or os.getcwd()
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, exist_ok=True)  # a new install: make the place for it
        except OSError as error:
            reason = os_reason(error)
            problems.append(
                f"{DATABASE_PATH_VARIABLE}={directory} is not a directory and cannot be "
                f"created: {reason}"
            )
    return "sqlite:///" + os.path.join(os.path.abspath(directory), DATABASE_FILE_NAME)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and check the settings; raise SettingsError listing every problem."""
    problems: list[str] = []
    path = find_settings_file(environ)
    parser = _read_file(path, problems) if path else configparser.ConfigParser()
    values = _service_values(parser, problems)
    keystone = _keystone(parser, environ, problems)
    uri = database_uri(environ, problems)
    extra = environ.get(EXTRA_CONFIG_VARIABLE) or None
    if extra and not os.path.isfile(extra):
        problems.append(f"{EXTRA_CONFIG_VARIABLE}={extra} is not a file")
    if problems:
        raise SettingsError(problems)
    return Settings(keystone=keystone, database_uri=uri, extra_config=extra, source=path, **values)
