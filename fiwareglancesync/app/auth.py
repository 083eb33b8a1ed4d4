"""Callers' Keystone tokens: validation, a short cache, and the role check.

The verifier is swappable: the application calls whatever object is in its service
state, so tests use a dictionary of tokens and production asks Keystone v3
(``GET /v3/auth/tokens`` with ``X-Subject-Token``) with the service's own credential.
Tokens are never logged; the cache keys on their SHA-256, not on the token itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.settings import KeystoneSettings
from fiwareglancesync.credentials import auth_plugin, identity_url

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Auth-Token"
Clock = Callable[[], dt.datetime]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InvalidToken(Exception):
    """Keystone does not accept the token (unknown, expired, revoked): 401."""


class AuthUnavailable(Exception):
    """The token cannot be checked now (Keystone unreachable or refusing us): 503."""


@dataclass(frozen=True)
class Identity:
    """Who a valid token belongs to, and until when it is valid."""

    user_id: str
    user_name: str
    project_id: str | None
    roles: frozenset[str]
    expires_at: dt.datetime  # aware, UTC
    # Who, exactly: a user name is unique only within its domain.
    user_domain_id: str | None = None
    user_domain_name: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    system_scoped: bool = False


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Identity:
        """Return the token's identity, or raise InvalidToken / AuthUnavailable."""

    def service_project_id(self) -> str | None:
        """The project of the service's own credential (None when there is none)."""


# --------------------------------------------------------------------------- Keystone


def identity_from_access(access: Any) -> Identity:
    """What a validated token says (keystoneclient's AccessInfo) as an Identity."""
    expires = access.expires
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    return Identity(
        user_id=str(access.user_id or ""),
        user_name=str(access.username or ""),
        project_id=access.project_id,
        roles=frozenset(access.role_names or ()),
        expires_at=expires,
        user_domain_id=_optional(access, "user_domain_id"),
        user_domain_name=_optional(access, "user_domain_name"),
        project_name=_optional(access, "project_name"),
        project_domain_id=_optional(access, "project_domain_id"),
        system_scoped=_system_scoped(access),
    )


def _optional(access: Any, name: str) -> str | None:
    """A field the audit trail records but no rule needs: a token document without it
    (keystoneclient raises KeyError for a domain given by id alone) is still a token."""
    try:
        value = getattr(access, name)
    except KeyError:
        return None
    return None if value is None else str(value)


def _system_scoped(access: Any) -> bool:
    """Is the token scoped to the whole system?

    keystoneauth's AccessInfo says so (``system_scoped``); keystoneclient's, which
    ``tokens.validate`` returns, has no such attribute: it is the token document itself,
    a dict holding ``"system": {"all": true}`` for a system-scoped token.
    """
    scoped = getattr(access, "system_scoped", None)
    if scoped is not None:
        return bool(scoped)
    system = access.get("system") if isinstance(access, dict) else None
    return isinstance(system, dict) and system.get("all") is True


class KeystoneVerifier:
    """Validates tokens with python-keystoneclient (``tokens.validate``), as the service.

    One client per worker, made on first use: its keystoneauth session keeps the
    service's own token (renewed near its expiry, or after a 401) and its connections
    to Keystone, so a validation costs one request.
    """

    def __init__(self, settings: KeystoneSettings, timeout: float = 10.0):
        self.settings = settings
        # A password, an application credential or a clouds.yaml entry: one Credential.
        self.credential = settings.credential()
        self.url = identity_url(self.credential.auth_url)
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def _new_session(self) -> Any:
        from keystoneauth1 import session

        credential = self.credential
        return session.Session(
            auth=auth_plugin(credential),
            verify=credential.verify,
            cert=credential.client_cert,
            timeout=self.timeout,
        )

    def client(self) -> Any:
        from keystoneclient.v3 import client

        with self._lock:
            if self._client is None:
                self._client = client.Client(
                    session=self._new_session(),
                    endpoint_override=self.url,
                    interface=self.credential.interface,
                )
            return self._client

    def session(self) -> Any:
        return self.client().session

    def service_project_id(self) -> str | None:
        """Read from the service's own token, so that any kind of credential works."""
        session = self.session()
        try:
            return session.auth.get_access(session).project_id
        except Exception as error:  # noqa: BLE001 - Keystone down: no project, all refused
            logger.error("cannot read the service's own project: %s", type(error).__name__)
            return None

    def _own_token(self, keystone: Any) -> None:
        """The service's own token (cached, or asked for): a refusal there is our
        credential's fault, not the caller's, and is a 503."""
        from keystoneauth1 import exceptions

        try:
            keystone.session.get_token()
        except (exceptions.Unauthorized, exceptions.NotFound) as error:
            # NotFound: Keystone's answer for a deleted application credential.
            logger.error(
                "Keystone rejected the service's own credential (%s): %s",
                self.credential.describe(),
                type(error).__name__,
            )
            raise AuthUnavailable(
                "Keystone is unavailable: the service cannot authenticate to it"
            ) from None
        except exceptions.ClientException as error:
            logger.error("Keystone %s is unreachable: %s", self.url, type(error).__name__)
            raise AuthUnavailable("Keystone is unreachable") from None

    def verify(self, token: str) -> Identity:
        from keystoneauth1 import exceptions

        keystone = self.client()
        self._own_token(keystone)
        try:
            access = self._validate(keystone, token)
        except (exceptions.Unauthorized, exceptions.NotFound):
            # Our own token may be the one refused: revoked, or from an application
            # credential since deleted (Keystone then says 404 "Could not find
            # Application Credential", as it does for a caller's token of one). A new
            # token of ours tells which; then the caller's is checked once more.
            keystone.session.invalidate()
            self._own_token(keystone)
            access = self._validate(keystone, token, again=True)
        return self._identity(access)

    def _validate(self, keystone: Any, token: str, again: bool = False) -> Any:
        from keystoneauth1 import exceptions

        try:
            return keystone.tokens.validate(token, include_catalog=False)
        except NotImplementedError:  # keystoneclient's word for a body that is no token
            logger.error("Keystone sent a token document that cannot be read")
            raise AuthUnavailable("Keystone sent an unreadable token document") from None
        except (exceptions.Unauthorized, exceptions.NotFound) as error:
            if not again and self._maybe_ours(error):
                raise
            raise InvalidToken(
                f"Keystone does not accept the token ({type(error).__name__})"
            ) from None
        except exceptions.ClientException as error:
            logger.error("Keystone could not validate a token: %s", type(error).__name__)
            raise AuthUnavailable("Keystone is unavailable") from None

    def _maybe_ours(self, error: Exception) -> bool:
        """Could this refusal be of the service's own token rather than the caller's?
        A 401 always could; a 404 only when we use an application credential and it is
        one that Keystone cannot find (a bad caller's token is a plain 404)."""
        from keystoneauth1 import exceptions

        if isinstance(error, exceptions.Unauthorized):
            return True
        return self.credential.is_application_credential and "application credential" in (
            str(error).lower()
        )

    @staticmethod
    def _identity(access: Any) -> Identity:
        try:
            return identity_from_access(access)
        except (AttributeError, TypeError, ValueError, KeyError) as error:
            logger.error("Keystone sent a token document that cannot be read: %s", error)
            raise AuthUnavailable("Keystone sent an unreadable token document") from None


# --------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class _Entry:
    identity: Identity
    until: dt.datetime


class CachingVerifier:
    """Remembers valid tokens for ``ttl`` seconds, never past their expiry.

    Tokens Keystone rejected are remembered too, for ``negative_ttl`` seconds (a few)
    and at most ``max_rejected`` of them, so that one bad token repeated is not a flood
    of validations at Keystone; a caller who fixes their token uses another token, so is
    not kept out. A Keystone outage is never remembered: it ends for everybody as soon
    as Keystone answers again.
    """

    def __init__(
        self,
        inner: TokenVerifier,
        ttl: float,
        clock: Clock = now_utc,
        max_entries: int = 4096,
        negative_ttl: float = 5.0,
        max_rejected: int = 1024,
    ):
        self.inner = inner
        self.ttl = dt.timedelta(seconds=ttl)
        self.negative_ttl = dt.timedelta(seconds=negative_ttl)
        self.clock = clock
        self.max_entries = max_entries
        self.max_rejected = max_rejected
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._rejected: OrderedDict[str, dt.datetime] = OrderedDict()
        self._lock = threading.Lock()

    def service_project_id(self) -> str | None:
        return self.inner.service_project_id()

    def verify(self, token: str) -> Identity:
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry.until:
                return entry.identity
            self._entries.pop(key, None)
            rejected_until = self._rejected.get(key)
            if rejected_until is not None and now < rejected_until:
                raise InvalidToken("the token was rejected moments ago")
            self._rejected.pop(key, None)
        try:
            identity = self.inner.verify(token)
        except InvalidToken:
            self._reject(key, now)
            raise
        if now >= identity.expires_at:
            raise InvalidToken("the token has expired")
        if self.ttl.total_seconds() > 0:
            self._remember(key, _Entry(identity, min(now + self.ttl, identity.expires_at)))
        return identity

    def _reject(self, key: str, now: dt.datetime) -> None:
        if self.negative_ttl.total_seconds() <= 0:
            return
        with self._lock:
            self._rejected[key] = now + self.negative_ttl
            while len(self._rejected) > self.max_rejected:
                self._rejected.popitem(last=False)

    def _remember(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class StaticVerifier:
    """A verifier from a fixed table of tokens: for tests and local experiments."""

    def __init__(
        self,
        identities: dict[str, Identity],
        unavailable: bool = False,
        service_project: str | None = None,
    ):
        self.identities = identities
        self.unavailable = unavailable
        self.service_project = service_project
        self.calls = 0

    def service_project_id(self) -> str | None:
        return self.service_project

    def verify(self, token: str) -> Identity:
        self.calls += 1
        if self.unavailable:
            raise AuthUnavailable("Keystone is unreachable (simulated)")
        try:
            return self.identities[token]
        except KeyError:
            raise InvalidToken("unknown token") from None


class UnconfiguredVerifier:
    """No Keystone settings (a service on the mock): every token check is unavailable."""

    def __init__(self, missing: list[str]):
        self.missing = list(missing)

    def service_project_id(self) -> str | None:
        return None

    def verify(self, token: str) -> Identity:
        raise AuthUnavailable(
            "token validation is not configured: set "
            + ", ".join(self.missing)
            + " in [openstack] of the settings file"
        )


class NoAuthVerifier:
    """``AUTH_STRATEGY = noauth``: nobody's token is checked, everybody is the admin.

    Only for trying the service on the mock from this host: the application accepts it
    only with the mock facade and a loopback address, warns at start, and says so in
    every response's headers.
    """

    accepts_anyone = True

    def __init__(self, role: str):
        self.identity = Identity(
            user_id="noauth",
            user_name="noauth",
            project_id=None,
            roles=frozenset({role}),
            expires_at=dt.datetime.max.replace(tzinfo=dt.UTC),
        )

    def verify(self, token: str) -> Identity:
        return self.identity

    def service_project_id(self) -> str | None:
        return None


# --------------------------------------------------------------------------- requests


def authenticate(verifier: TokenVerifier, token: str | None) -> Identity:
    """The caller's identity; an ApiError (401, 503) when the token cannot be used."""
    if getattr(verifier, "accepts_anyone", False):
        return verifier.verify(token or "")
    if not token:
        raise ApiError(401, description=f"the {TOKEN_HEADER} header is missing")
    try:
        identity = verifier.verify(token)
    except InvalidToken:
        raise ApiError(401, description="the token is not valid") from None
    except AuthUnavailable as error:
        raise ApiError(503, description=str(error)) from None
    return identity


def who(identity: Identity | None) -> str:
    """The caller as one audit log field: ids, never the token."""
    if identity is None:
        return "user=- domain=- project=-"
    scope = "system" if identity.system_scoped else (identity.project_id or "-")
    return (
        f"user={identity.user_id} ({identity.user_name}) "
        f"domain={identity.user_domain_id or '-'} project={scope}"
    )
