"""What the views need from the running service, kept in ``app.extensions``.

The token guard lives here, beside the state it reads (the verifier and the role), so
that :mod:`auth` (how a token is checked) needs nothing from the running service.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request

from fiwareglancesync.app.auth import TOKEN_HEADER, TokenVerifier, authenticate
from fiwareglancesync.app.runner import EngineFactory, SyncRunner
from fiwareglancesync.app.settings import Settings

EXTENSION = "glancesync"
View = TypeVar("View", bound=Callable[..., Any])


@dataclass
class ServiceState:
    settings: Settings
    verifier: TokenVerifier
    new_engine: EngineFactory
    runner: SyncRunner
    started_at: dt.datetime


def service() -> ServiceState:
    return current_app.extensions[EXTENSION]


def token_required(view: View) -> View:
    """Run the view only for a valid token carrying the required role."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = service()
        g.identity = authenticate(
            state.verifier, state.settings.role, request.headers.get(TOKEN_HEADER)
        )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
