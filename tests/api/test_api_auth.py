"""Token validation: Keystone's answers, the cache and its limits, the role check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fake_keystone import FakeKeystone, fake_keystone, token_document

from fiwareglancesync.app.auth import (
    AuthUnavailable,
    CachingVerifier,
    Identity,
    InvalidToken,
    KeystoneVerifier,
    StaticVerifier,
    authenticate,
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


def test_rejected_tokens_are_remembered_a_few_seconds_only() -> None:
    inner, clock = StaticVerifier({}), Clock()
    cache = CachingVerifier(inner, ttl=30, clock=clock, negative_ttl=5)
    for _ in range(50):
        with pytest.raises(InvalidToken):
            cache.verify("t")
    assert inner.calls == 1  # one bad token repeated is one validation, not fifty
    inner.identities["t"] = identity()
    clock.advance(5)
    assert cache.verify("t").user_id == "u-id"
    assert inner.calls == 2


def test_outages_are_not_cached_and_rejections_are_bounded() -> None:
    inner, clock = StaticVerifier({}, unavailable=True), Clock()
    cache = CachingVerifier(inner, ttl=30, clock=clock, max_rejected=3)
    for _ in range(2):
        with pytest.raises(AuthUnavailable):
            cache.verify("t")
    assert inner.calls == 2
    inner.unavailable = False
    for n in range(10):
        with pytest.raises(InvalidToken):
            cache.verify(f"bad-{n}")
    assert len(cache._rejected) == 3


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
    assert authenticate(verifier, "adm").user_name == "user"
    # The role is the policy's business (test_api_policy), not the token check's.
    assert authenticate(verifier, "mem").user_name == "user"
    cases = [(None, 401, "Unauthorized"), ("", 401, "Unauthorized"), ("bad", 401, "Unauthorized")]
    for token, code, message in cases:
        with pytest.raises(ApiError) as raised:
            authenticate(verifier, token)
        assert (raised.value.code, raised.value.message) == (code, message)
    verifier.unavailable = True
    with pytest.raises(ApiError) as raised:
        authenticate(verifier, "adm")
    assert raised.value.code == 503


# --------------------------------------------------------------------------- Keystone


@pytest.fixture
def keystone() -> Iterator[FakeKeystone]:
    with fake_keystone() as server:
        yield server


def verifier_for(keystone: FakeKeystone, password: str = "pw") -> KeystoneVerifier:
    return KeystoneVerifier(KeystoneSettings(keystone.url, "svc", password, project_name="service"))


def test_a_valid_token_gives_its_identity_from_keystoneclients_access_info(keystone) -> None:
    keystone.tokens["caller"] = token_document("alice", ("admin", "reader"))
    found = verifier_for(keystone).verify("caller")
    assert (found.user_id, found.user_name, found.project_id) == ("alice-id", "alice", "p1")
    assert found.roles == {"admin", "reader"}
    assert (
        dt.timedelta(minutes=59)
        < found.expires_at - dt.datetime.now(dt.UTC)
        <= dt.timedelta(hours=1)
    )


def test_the_scope_of_a_token_is_read_from_keystoneclients_access_info(keystone) -> None:
    system = token_document("sysadmin")
    del system["token"]["project"]
    system["token"]["system"] = {"all": True}
    domain = token_document("domadmin")
    del domain["token"]["project"]
    domain["token"]["domain"] = {"id": "d2", "name": "dom2"}
    keystone.tokens.update(system=system, domain=domain, project=token_document())
    verifier = verifier_for(keystone)
    found = {name: verifier.verify(name) for name in ("system", "domain", "project")}
    assert [(i.project_id, i.system_scoped) for i in found.values()] == [
        (None, True),
        (None, False),
        ("p1", False),
    ]


def test_the_service_logs_in_once_for_many_validations(keystone) -> None:
    keystone.tokens["caller"] = token_document()
    verifier = verifier_for(keystone)
    for _ in range(5):
        verifier.verify("caller")
    assert (keystone.logins, keystone.validations) == (1, 5)


def test_an_unknown_token_is_invalid(keystone) -> None:
    with pytest.raises(InvalidToken):
        verifier_for(keystone).verify("nobody-knows-it")


@pytest.mark.parametrize("answer", [500, 503, 403, {"not": "a token"}])
def test_keystone_trouble_makes_the_service_unavailable(keystone, answer: Any) -> None:
    keystone.tokens["t"] = answer
    with pytest.raises(AuthUnavailable):
        verifier_for(keystone).verify("t")


def test_a_wrong_service_password_makes_the_service_unavailable(keystone) -> None:
    keystone.tokens["t"] = token_document()
    with pytest.raises(AuthUnavailable, match="cannot authenticate"):
        verifier_for(keystone, password="wrong").verify("t")


def test_an_unreachable_keystone_makes_the_service_unavailable() -> None:
    with fake_keystone() as server:
        url = server.url
    verifier = KeystoneVerifier(
        KeystoneSettings(url, "svc", "pw", project_name="service"), timeout=2
    )
    with pytest.raises(AuthUnavailable, match="unreachable"):
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
