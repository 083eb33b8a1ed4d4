"""What the views need from the running service, kept in ``app.extensions``.

The token guard lives here, beside the state it reads (the verifier and the role), so
that :mod:`auth` (how a token is checked) needs nothing from the running service.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request

from fiwareglancesync.app.auth import TOKEN_HEADER, Identity, TokenVerifier, authenticate, who
from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.policy import Policy
from fiwareglancesync.app.runner import EngineFactory, SyncRunner
from fiwareglancesync.app.settings import Settings

EXTENSION = "glancesync"
# The audit trail: starts, joins, deletions and refusals, one line each.
audit = logging.getLogger("fiwareglancesync.app.audit")
View = TypeVar("View", bound=Callable[..., Any])


@dataclass
class ServiceState:
    settings: Settings
    verifier: TokenVerifier
    new_engine: EngineFactory
    runner: SyncRunner
    started_at: dt.datetime
    policy: Policy


def service() -> ServiceState:
    return current_app.extensions[EXTENSION]


def _refused(error: ApiError, identity: Identity | None, rule: str) -> ApiError:
    """One WARNING line per refusal (401, 403): who, what, where; never the token."""
    region = (request.view_args or {}).get("region", "-")
    audit.warning(
        "Refused %d: %s %s rule=%s region=%s task=%s %s",
        error.code,
        request.method,
        request.path,
        rule,
        region,
        (request.view_args or {}).get("task_id", "-"),
        who(identity),
    )
    return error


def authorize(rule: str) -> Identity:
    """The caller, when the token is valid and policy ``rule`` lets it through."""
    state = service()
    try:
        identity = authenticate(state.verifier, request.headers.get(TOKEN_HEADER))
    except ApiError as error:
        if error.code in (401, 403):
            raise _refused(error, None, rule) from None
        raise
    if getattr(state.verifier, "accepts_anyone", False):
        return identity  # noauth: the mock on loopback only, said in every response
    if not state.policy.allows(rule, identity, state.verifier.service_project_id()):
        role = state.settings.role
        # Without the role, the published message; with it, the scope (or an operator's
        # rule) is what refused: "Forbidden", and the description names the rule.
        error = (
            ApiError(403, f"Role is not {role}")
            if role not in identity.roles
            else ApiError(403, description=f"policy rule {rule} does not allow this token")
        )
        raise _refused(error, identity, rule)
    return identity


def token_required(rule: str) -> Callable[[View], View]:
    """Run the view only for a valid token that policy ``rule`` allows."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.identity = authorize(rule)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
