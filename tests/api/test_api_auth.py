"""Token validation: Keystone's answers, the cache and its limits, the role check."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from keystoneauth1 import exceptions as ks_exceptions

from fiwareglancesync.app.auth import (
    AuthUnavailable,
    CachingVerifier,
    Identity,
    InvalidToken,
    KeystoneVerifier,
    StaticVerifier,
    authenticate,
    identity_from_token,
    identity_url,
)
from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.settings import KeystoneSettings

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def identity(expires_at: dt.datetime = T0 + dt.timedelta(hours=1), *roles: str) -> Identity:
    return Identity("u-id", "user", "p-id", frozenset(roles or ("admin",)), expires_at)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# --------------------------------------------------------------------------- cache


def test_a_valid_token_is_asked_once_within_the_ttl() -> None:
    inner, clock = StaticVerifier({"t": identity()}), Clock()
    cache = CachingVerifier(inner, ttl=30, clock=clock)
    for _ in range(5):
        assert cache.verify("t").user_name == "user"
        clock.advance(5)
    assert inner.calls == 1
    clock.advance(10)  # 35 s after the first call
    cache.verify("t")
    assert inner.calls == 2


def test_the_cache_never_outlives_the_token() -> None:
    inner, clock = StaticVerifier({"t": identity(T0 + dt.timedelta(seconds=10))}), Clock()
    cache = CachingVerifier(inner, ttl=300, clock=clock)
    cache.verify("t")
    clock.advance(11)
    with pytest.raises(InvalidToken):
        cache.verify("t")  # Keystone still says yes, but the token has expired
    assert inner.calls == 2


def test_failures_are_not_cached() -> None:
    inner, clock = StaticVerifier({}), Clock()
    cache = CachingVerifier(inner, ttl=30, clock=clock)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            cache.verify("t")
    inner.identities["t"] = identity()
    assert cache.verify("t").user_id == "u-id"
    assert inner.calls == 3


def test_the_cache_is_bounded_and_keeps_no_raw_token() -> None:
    tokens = {f"token-{n}": identity() for n in range(10)}
    cache = CachingVerifier(StaticVerifier(tokens), ttl=30, clock=Clock(), max_entries=4)
    for token in tokens:
        cache.verify(token)
    assert len(cache._entries) == 4
    assert not any(key.startswith("token-") for key in cache._entries)


def test_a_zero_ttl_disables_the_cache() -> None:
    inner = StaticVerifier({"t": identity()})
    cache = CachingVerifier(inner, ttl=0, clock=Clock())
    cache.verify("t")
    cache.verify("t")
    assert inner.calls == 2


# --------------------------------------------------------------------------- role check


def test_authenticate_maps_every_case() -> None:
    verifier = StaticVerifier({"adm": identity(), "mem": identity(T0, "member")})
    assert authenticate(verifier, "admin", "adm").user_name == "user"
    cases = [(None, 401, "Unauthorized"), ("", 401, "Unauthorized"), ("bad", 401, "Unauthorized")]
    cases.append(("mem", 403, "Role is not admin"))
    for token, code, message in cases:
        with pytest.raises(ApiError) as raised:
            authenticate(verifier, "admin", token)
        assert (raised.value.code, raised.value.message) == (code, message)
    verifier.unavailable = True
    with pytest.raises(ApiError) as raised:
        authenticate(verifier, "admin", "adm")
    assert raised.value.code == 503


# --------------------------------------------------------------------------- Keystone


def token_body(**changes: Any) -> dict[str, Any]:
    token = {
        "expires_at": "2030-01-01T13:00:00.000000Z",
        "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
        "project": {"id": "p1", "name": "admin"},
        "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "reader"}],
    }
    token.update(changes)
    return {"token": token}


def test_identity_from_a_keystone_token_document() -> None:
    found = identity_from_token(token_body())
    assert (found.user_id, found.user_name, found.project_id) == ("u1", "alice", "p1")
    assert found.roles == {"admin", "reader"}
    assert found.expires_at == T0 + dt.timedelta(hours=1)


def test_an_unscoped_token_has_no_role() -> None:
    body = token_body()
    del body["token"]["roles"], body["token"]["project"]
    assert identity_from_token(body).roles == frozenset()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("http://127.0.0.1:5000/v3", "http://127.0.0.1:5000/v3"),
        ("http://127.0.0.1:5000/v3/", "http://127.0.0.1:5000/v3"),
        ("http://127.0.0.1:5000/v2.0", "http://127.0.0.1:5000/v3"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/v3"),
        ("https://keystone.example/identity", "https://keystone.example/identity/v3"),
    ],
)
def test_identity_url(setting: str, expected: str) -> None:
    assert identity_url(setting) == expected


@dataclass
class FakeResponse:
    status_code: int
    body: Any = None

    def json(self) -> Any:
        if self.body is None:
            raise ValueError("not JSON")
        return self.body


class FakeSession:
    def __init__(self, outcome: Any):
        self.outcome = outcome
        self.calls: list[tuple[str, dict[str, str]]] = []

    def get(self, url: str, headers: dict[str, str], **options: Any) -> Any:
        self.calls.append((url, headers))
        assert options["log"] is False, "the response holds token data: never logged"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def keystone_verifier(outcome: Any) -> tuple[KeystoneVerifier, FakeSession]:
    settings = KeystoneSettings("http://127.0.0.1:5000/v3", "svc", "pw", project_name="service")
    verifier = KeystoneVerifier(settings)
    session = FakeSession(outcome)
    verifier._session = session
    return verifier, session


def test_keystone_verifier_asks_for_the_subject_token() -> None:
    verifier, session = keystone_verifier(FakeResponse(200, token_body()))
    assert verifier.verify("caller-token").user_name == "alice"
    assert session.calls == [
        ("http://127.0.0.1:5000/v3/auth/tokens", {"X-Subject-Token": "caller-token"})
    ]


@pytest.mark.parametrize("status", [401, 404])
def test_keystone_rejections_are_invalid_tokens(status: int) -> None:
    verifier, _ = keystone_verifier(FakeResponse(status))
    with pytest.raises(InvalidToken):
        verifier.verify("t")


@pytest.mark.parametrize(
    "outcome",
    [
        FakeResponse(500),
        FakeResponse(403),
        FakeResponse(200, {"unexpected": True}),
        FakeResponse(200),
        ks_exceptions.ConnectFailure("refused"),
        ks_exceptions.ConnectTimeout("slow"),
        ks_exceptions.Unauthorized("the service's password is wrong"),
    ],
)
def test_keystone_trouble_makes_the_service_unavailable(outcome: Any) -> None:
    verifier, _ = keystone_verifier(outcome)
    with pytest.raises(AuthUnavailable):
        verifier.verify("t")


def test_keystone_session_uses_the_service_credential() -> None:
    settings = KeystoneSettings(
        "http://127.0.0.1:5000", "svc", "pw", project_id="p-id", cacert="/etc/ca.pem"
    )
    session = KeystoneVerifier(settings).session()
    assert session.verify == "/etc/ca.pem"
    assert session.auth.auth_url == "http://127.0.0.1:5000/v3"
    assert session.auth.auth_methods[0].username == "svc"
    assert session.auth.project_id == "p-id"
