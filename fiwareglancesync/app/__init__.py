"""The GlanceSync REST service: ``create_app`` builds a configured Flask application.

Nothing happens at import time. ``create_app`` reads the settings, checks them together
with the sync configuration (every problem in one :class:`SettingsError`), binds the
extensions and blueprints, and chooses the token verifier and the engine.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

from fiwareglancesync.app.api import register_blueprints
from fiwareglancesync.app.auth import (
    CachingVerifier,
    KeystoneVerifier,
    NoAuthVerifier,
    TokenVerifier,
    UnconfiguredVerifier,
)
from fiwareglancesync.app.database import MIGRATIONS_DIR, configure_database
from fiwareglancesync.app.errors import register_error_handlers
from fiwareglancesync.app.extensions import db, migrate
from fiwareglancesync.app.flask_config import ProductionConfig
from fiwareglancesync.app.framing import install as install_framing_checks
from fiwareglancesync.app.models import Task
from fiwareglancesync.app.policy import Policy
from fiwareglancesync.app.runner import EngineFactory, SyncRunner
from fiwareglancesync.app.settings import (
    NOAUTH_STRATEGY,
    Settings,
    SettingsError,
    load_settings,
    noauth_problems,
)
from fiwareglancesync.app.state import EXTENSION, ServiceState
from fiwareglancesync.config import load_config
from fiwareglancesync.engine import CloudCache, GlanceSync
from fiwareglancesync.errors import GlanceSyncError, explain
from fiwareglancesync.facades import MOCK_PATH_VARIABLE

__all__ = ["SettingsError", "create_app"]

logger = logging.getLogger(__name__)

NOAUTH_WARNING = (
    "AUTH_STRATEGY = noauth: no token is checked and every caller is an admin; "
    "for trying the service on the mock from this host only"
)
# Said in every response of a service that checks no token.
NOAUTH_HEADER = "X-GlanceSync-Auth-Strategy"


def _as_mapping(config: object | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return {name: getattr(config, name) for name in dir(config) if name.isupper()}


def default_engine_factory(
    environ: Mapping[str, str], master_max_age: float = 0.0
) -> EngineFactory:
    """The same configuration and facades as ``sync.py`` (GLANCESYNC_CONFIG, the mock...).

    The engines it makes share one :class:`CloudCache`: the process keeps its Keystone
    sessions, tokens and connections, and lists the master at most once per
    ``master_max_age`` seconds.
    """
    from fiwareglancesync.facades import facade_factory

    config = load_config(environ)
    cache = CloudCache(facade_factory(environ), master_max_age)
    return lambda: GlanceSync(config, cache=cache)


def _verifier(
    settings: Settings, environ: Mapping[str, str], problems: list[str]
) -> TokenVerifier | None:
    if settings.auth_strategy == NOAUTH_STRATEGY:
        refused = noauth_problems(settings, settings.host, bool(environ.get(MOCK_PATH_VARIABLE)))
        if refused:
            problems.extend(refused)
            return None
        logger.warning(NOAUTH_WARNING)
        return NoAuthVerifier(settings.role)
    missing = settings.keystone.missing()
    if missing and environ.get(MOCK_PATH_VARIABLE):
        # On the mock there may be no Keystone at all: serve what needs no token (GET /),
        # and answer 503 where a token would have to be checked.
        logger.warning(
            "Token validation is not configured (%s not set): on the mock, only the "
            "endpoints that need no token work",
            ", ".join(missing),
        )
        return UnconfiguredVerifier(missing)
    if missing:
        problems.extend(
            f"[openstack] {name} is not set (nor its OS_* environment variable): it is "
            "needed to validate the callers' tokens"
            for name in missing
        )
        return None
    return KeystoneVerifier(settings.keystone)


def _engine_factory(
    environ: Mapping[str, str], settings: Settings, problems: list[str]
) -> EngineFactory | None:
    try:
        return default_engine_factory(environ, settings.master_cache_seconds)
    except GlanceSyncError as error:
        problems.extend(f"sync configuration: {line}" for line in error_lines(error))
        return None


def error_lines(error: GlanceSyncError) -> list[str]:
    return list(explain(error).lines)


def _service_state(app: Flask, settings: Settings, environ: Mapping[str, str]) -> ServiceState:
    problems: list[str] = []
    verifier = app.config.get("TOKEN_VERIFIER") or _verifier(settings, environ, problems)
    new_engine: Callable[[], GlanceSync] | None = app.config.get(
        "ENGINE_FACTORY"
    ) or _engine_factory(environ, settings, problems)
    if problems:
        raise SettingsError(problems)
    assert verifier is not None and new_engine is not None
    if (
        (settings.token_cache_seconds > 0 or settings.rejected_token_cache_seconds > 0)
        and not app.config.get("TOKEN_VERIFIER")
        and not isinstance(verifier, UnconfiguredVerifier | NoAuthVerifier)
    ):
        verifier = CachingVerifier(
            verifier,
            settings.token_cache_seconds,
            negative_ttl=settings.rejected_token_cache_seconds,
        )
    runner = SyncRunner(app, new_engine, settings.task_lease_seconds)
    # Every gunicorn worker reports the time the server (not the worker) started.
    started = app.config.get("STARTED_AT") or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rules = Policy(
        settings.role, settings.policy_file, settings.allowed_projects, settings.allow_system_scope
    )
    return ServiceState(settings, verifier, new_engine, runner, started, rules)


def create_app(
    config: object | Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the application; raise SettingsError when it cannot work.

    ``config`` (a config class or a mapping) wins over everything else; it may carry a
    ready ``GLANCESYNC_SETTINGS``, a ``TOKEN_VERIFIER``, an ``ENGINE_FACTORY`` and the
    server's ``STARTED_AT`` (naive UTC).
    """
    environ = os.environ if environ is None else environ
    overrides = _as_mapping(config)
    settings: Settings = overrides.get("GLANCESYNC_SETTINGS") or load_settings(environ)
    app = Flask(__name__)
    app.config.from_object(ProductionConfig)
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_uri
    if settings.extra_config:
        app.config.from_pyfile(settings.extra_config)
    app.config.update(overrides)
    app.json.sort_keys = False  # type: ignore[attr-defined] - keep the documented order
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    configure_database(app)
    # /regions/X/ and //regions/X are not the resource /regions/X: a JSON 404, rather
    # than Werkzeug's HTML redirect to another spelling.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = True
    register_error_handlers(app)
    register_blueprints(app)
    # Imported here, not at the top: prometheus_client must not be imported before
    # run.py gunicornserver has set up the workers' multiprocess directory.
    from fiwareglancesync.app.metrics import install as install_metrics

    install_metrics(app)
    install_framing_checks(app)
    app.shell_context_processor(lambda: {"db": db, "Task": Task})
    if not app.config.get("DATABASE_ONLY"):
        app.extensions[EXTENSION] = _service_state(app, settings, environ)
        if isinstance(app.extensions[EXTENSION].verifier, NoAuthVerifier):
            app.after_request(_say_noauth)
    return app


def _say_noauth(response: Any) -> Any:
    response.headers[NOAUTH_HEADER] = "noauth"
    response.headers["Warning"] = f'299 glancesync "{NOAUTH_WARNING}"'
    return response
