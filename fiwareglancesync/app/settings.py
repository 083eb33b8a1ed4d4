"""The service's settings: an INI file, environment variables and built-in defaults.

Lookup of the settings file, first hit wins: ``GLANCESYNC_SETTINGS_FILE`` (a path that does
not exist is an error), ``/etc/fiware.d/fiware-glancesync.cfg``, no file. Keystone settings
missing from the file fall back to the ``OS_*`` variables, as the command line does.
Every problem is collected and reported together as one :class:`SettingsError`; nothing
here reads ``os.environ`` itself: the caller passes the environment in.
"""

from __future__ import annotations

import configparser
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fiwareglancesync import __version__
from fiwareglancesync.booleans import parse_bool
from fiwareglancesync.config import default_of
from fiwareglancesync.credentials import (
    CLOUD_VARIABLE,
    PASSWORD_PLUGIN,
    Credential,
    CredentialProblem,
    credential_from_cloud,
    credential_from_options,
    identity_url,
    is_secret_option,
)
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


KEYSTONE_STRATEGY = "keystone"
NOAUTH_STRATEGY = "noauth"
AUTH_STRATEGIES = (KEYSTONE_STRATEGY, NOAUTH_STRATEGY)


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

    # CLOUD = NAME, or AUTH_TYPE = PLUGIN with its options: the whole credential, made
    # when the settings are read (None: the ADM_* password settings above).
    credential_of_choice: Credential | None = field(default=None, repr=False)

    def credential(self) -> Credential:
        """The service's own credential, whichever way the settings give it."""
        if self.credential_of_choice is not None:
            return self.credential_of_choice
        project = (
            {"project_id": self.project_id}
            if self.project_id
            else {
                "project_name": self.project_name or "",
                "project_domain_name": self.project_domain_name,
            }
        )
        options = {
            "auth_url": identity_url(self.url or ""),
            "username": self.user or "",
            "password": self.password or "",
            "user_domain_name": self.user_domain_name,
            **project,
        }
        return Credential(
            PASSWORD_PLUGIN, tuple(options.items()), cacert=self.cacert, insecure=self.insecure
        )

    def secrets(self) -> list[str]:
        """Every secret of the credential, for the log filter to mask."""
        credential = self.credential_of_choice
        found = [self.password or ""]
        if credential is not None:
            found += [value for name, value in credential.options if is_secret_option(name)]
        return [secret for secret in found if secret]

    def missing(self) -> list[str]:
        """The options that must be set before tokens can be validated."""
        if self.credential_of_choice is not None:
            return []
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
    # keystone: callers' tokens are validated; noauth: nothing is (mock and loopback only).
    auth_strategy: str = KEYSTONE_STRATEGY


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
    ("glancesync", "AUTH_STRATEGY"): ("auth_strategy", str),
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
    try:
        chosen = _credential_of_choice(parser, environ, values)
    except CredentialProblem as problem:
        problems.append(f"[openstack] {problem}")
        chosen = None
    return KeystoneSettings(**values, credential_of_choice=chosen)


def _credential_of_choice(
    parser: configparser.ConfigParser, environ: Mapping[str, str], values: Mapping[str, Any]
) -> Credential | None:
    """CLOUD = NAME (else OS_CLOUD, when the file sets no credential), or AUTH_TYPE =
    PLUGIN with the plugin's options in [openstack]; None for the ADM_* settings."""
    cloud = _get(parser, "openstack", "CLOUD")
    auth_type = _get(parser, "openstack", "AUTH_TYPE")
    historic = [o for o in ("ADM_USER", "ADM_PASS") if _get(parser, "openstack", o)]
    if cloud and (historic or auth_type):
        given = ", ".join(historic + (["AUTH_TYPE"] if auth_type else []))
        raise CredentialProblem(
            f"CLOUD cannot be combined with {given} (the clouds.yaml entry holds the "
            "whole credential)"
        )
    if not cloud and not auth_type and not historic and environ.get(CLOUD_VARIABLE):
        cloud = environ[CLOUD_VARIABLE].strip()
    if cloud:
        return credential_from_cloud(cloud, environ)
    if not auth_type:
        return None
    options = dict(parser.items("openstack")) if parser.has_section("openstack") else {}
    options.pop("keystone_url", None)  # KEYSTONE_URL (or OS_AUTH_URL) as a v3 URL, below
    if values.get("url"):
        options["auth_url"] = identity_url(values["url"])
    return credential_from_options(
        auth_type,
        {name.lower(): value.strip() for name, value in options.items()},
        cacert=values.get("cacert"),
        insecure=bool(values.get("insecure", False)),
    )


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
        if name == "auth_strategy" and value.lower() not in AUTH_STRATEGIES:
            problems.append(f"[{section}] {option} must be one of {', '.join(AUTH_STRATEGIES)}")
            continue
        if name == "loglevel" and value.lower() not in _LOGLEVELS:
            problems.append(f"[{section}] {option} must be one of {', '.join(sorted(_LOGLEVELS))}")
            continue
        values[name] = value.lower() if name in ("loglevel", "auth_strategy") else value
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


def is_loopback(host: str) -> bool:
    """Is ``host`` an address only this machine can reach (127.0.0.0/8, ::1, localhost)?"""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def noauth_problems(settings: Settings, host: str, on_mock: bool) -> list[str]:
    """Why ``AUTH_STRATEGY = noauth`` cannot be used here (nothing when it can)."""
    if settings.auth_strategy != NOAUTH_STRATEGY:
        return []
    problems = []
    if not on_mock:
        problems.append(
            "[glancesync] AUTH_STRATEGY = noauth works only on the mock "
            "(set GLANCESYNC_MOCKPERSISTENT_PATH); a real cloud needs keystone"
        )
    if not is_loopback(host):
        problems.append(
            f"[glancesync] AUTH_STRATEGY = noauth works only on a loopback address "
            f"(127.0.0.1, ::1, localhost), not {host}"
        )
    return problems
