"""How the JWKS cache treats the identity provider: discovery, TTL, the refetch for an unknown
`kid` and its cooldown, key rotation, a provider that is down, and many threads at once.

The provider is a real HTTP server on loopback that counts its hits; time is a clock the tests
move by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from simpleai.auth import JwksCache, TokenVerifier, parse_jwks
from simpleai.errors import AuthenticationError, AuthUnavailableError
from simpleai.runtime import JsonFetcher
from tests.support.identity_provider import (
    AUDIENCE,
    DISCOVERY_PATH,
    JWKS_PATH,
    FakeClock,
    JwksServer,
    KeyPair,
    claims_for,
)

TTL = 3600
COOLDOWN = 60
STALE = 86400


@pytest.fixture(scope="module")
def old_key() -> KeyPair:
    return KeyPair.generate("RS256")


@pytest.fixture(scope="module")
def new_key() -> KeyPair:
    return KeyPair.generate("ES256")


@pytest.fixture
def provider(old_key: KeyPair) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.publish(old_key)
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def cache(provider: JwksServer, clock: FakeClock, http: httpx.Client) -> JwksCache:
    return JwksCache(
        JsonFetcher(http),
        issuer=provider.issuer,
        ttl=TTL,
        refresh_cooldown=COOLDOWN,
        stale_seconds=STALE,
        clock=clock,
    )


@pytest.fixture
def verifier(cache: JwksCache, provider: JwksServer, clock: FakeClock) -> TokenVerifier:
    # The same clock drives the key cache and the verified-token cache.
    return TokenVerifier(cache, issuer=provider.issuer, audience=(AUDIENCE,), clock=clock)


Verify = Callable[[str], Any]


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_keys_are_discovered_once_and_cached_for_the_ttl(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    token = old_key.sign(claims_for(provider.issuer))

    for _ in range(5):
        verifier.verify(bearer(token))
    assert (provider.hits[DISCOVERY_PATH], provider.hits[JWKS_PATH]) == (1, 1)

    clock.advance(TTL)
    verifier.verify(bearer(token))
    # the jwks_uri is remembered: an expired key set costs one request, not two
    assert (provider.hits[DISCOVERY_PATH], provider.hits[JWKS_PATH]) == (1, 2)


def test_a_flood_of_unknown_kids_causes_one_refetch_per_cooldown(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    verifier.verify(bearer(old_key.sign(claims_for(provider.issuer))))

    for number in range(50):
        token = old_key.sign(claims_for(provider.issuer), kid=f"made-up-{number}")
        with pytest.raises(AuthenticationError, match="unknown key"):
            verifier.verify(bearer(token))
    assert provider.hits[JWKS_PATH] == 2  # the first fetch and one refetch

    clock.advance(COOLDOWN)
    with pytest.raises(AuthenticationError, match="unknown key"):
        verifier.verify(bearer(old_key.sign(claims_for(provider.issuer), kid="made-up-again")))
    assert provider.hits[JWKS_PATH] == 3


def test_rotated_key_is_fetched_and_the_retired_one_refused(
    verifier: TokenVerifier,
    provider: JwksServer,
    old_key: KeyPair,
    new_key: KeyPair,
) -> None:
    old_token = old_key.sign(claims_for(provider.issuer))
    verifier.verify(bearer(old_token))

    # WHEN the provider rotates to a new key and retires the old one
    provider.publish(new_key)
    identity = verifier.verify(bearer(new_key.sign(claims_for(provider.issuer, sub="bob"))))

    # THEN a token of the new key is accepted after one refetch, and the old token refused
    assert identity.subject == "bob"
    assert provider.hits[JWKS_PATH] == 2
    with pytest.raises(AuthenticationError, match="unknown key"):
        verifier.verify(bearer(old_token))
    assert provider.hits[JWKS_PATH] == 2


def test_token_without_kid_after_rotation_is_accepted_after_one_refetch(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair
) -> None:
    verifier.verify(bearer(old_key.sign(claims_for(provider.issuer), kid=None)))
    rotated = KeyPair.generate("RS256")
    provider.publish(rotated)

    identity = verifier.verify(bearer(rotated.sign(claims_for(provider.issuer), kid=None)))

    assert identity.subject == "alice"
    assert provider.hits[JWKS_PATH] == 2
    # a forged kid-less token right after is refused without another request
    forged = KeyPair.generate("RS256").sign(claims_for(provider.issuer), kid=None)
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        verifier.verify(bearer(forged))
    assert provider.hits[JWKS_PATH] == 2


def test_provider_down_with_a_warm_cache_keeps_accepting_and_warns(
    verifier: TokenVerifier,
    provider: JwksServer,
    old_key: KeyPair,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = old_key.sign(claims_for(provider.issuer))
    verifier.verify(bearer(token))
    provider.down = True
    clock.advance(TTL + 1)

    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            assert verifier.verify(bearer(token)).subject == "alice"

    # one attempt, then quiet until the cooldown has passed
    assert provider.hits.total() == 3  # discovery, the first key set, the failed refresh
    (record,) = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert token not in repr(record.__dict__)
    clock.advance(COOLDOWN)
    verifier.verify(bearer(token))
    assert provider.hits.total() == 4


def test_provider_back_up_refreshes_the_stale_keys(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    token = old_key.sign(claims_for(provider.issuer))
    verifier.verify(bearer(token))
    provider.down = True
    clock.advance(TTL + 1)
    verifier.verify(bearer(token))

    provider.down = False
    clock.advance(COOLDOWN)
    verifier.verify(bearer(token))
    clock.advance(TTL - 1)
    verifier.verify(bearer(token))

    assert provider.hits[JWKS_PATH] == 3  # first, failed, recovered; then fresh again


def test_provider_down_with_a_cold_cache_is_503_not_401(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    provider.down = True
    token = old_key.sign(claims_for(provider.issuer))

    with pytest.raises(AuthUnavailableError) as raised:
        verifier.verify(bearer(token))

    assert (raised.value.status, raised.value.type) == (503, "authentication_unavailable")
    assert raised.value.headers["Retry-After"] == str(COOLDOWN)
    # within the cooldown nobody asks the provider again
    clock.advance(20)
    with pytest.raises(AuthUnavailableError) as again:
        verifier.verify(bearer(token))
    assert again.value.headers["Retry-After"] == str(COOLDOWN - 20)
    assert provider.hits[DISCOVERY_PATH] == 1
    # once it is back and the cooldown has passed, the same token is accepted
    provider.down = False
    clock.advance(COOLDOWN)
    assert verifier.verify(bearer(token)).subject == "alice"


def test_keys_past_the_stale_limit_are_not_used(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    token = old_key.sign(claims_for(provider.issuer))
    verifier.verify(bearer(token))
    provider.down = True

    clock.advance(TTL + STALE - 1)
    assert verifier.verify(bearer(token)).subject == "alice"
    clock.advance(1)
    with pytest.raises(AuthUnavailableError):
        verifier.verify(bearer(token))


def test_unknown_kid_while_the_provider_is_down_is_503(
    verifier: TokenVerifier,
    provider: JwksServer,
    old_key: KeyPair,
    new_key: KeyPair,
    clock: FakeClock,
) -> None:
    verifier.verify(bearer(old_key.sign(claims_for(provider.issuer))))
    provider.down = True
    clock.advance(COOLDOWN)

    # the key may be a new one the provider cannot be asked about: the token may be fine
    with pytest.raises(AuthUnavailableError):
        verifier.verify(bearer(new_key.sign(claims_for(provider.issuer))))


def test_discovery_naming_another_issuer_is_refused(cache: JwksCache, provider: JwksServer) -> None:
    provider.discovery_overrides["issuer"] = "https://impostor.example"

    with pytest.raises(AuthUnavailableError, match="another issuer"):
        cache.signing_keys()
    assert provider.hits[JWKS_PATH] == 0


def test_configured_jwks_url_skips_discovery(
    provider: JwksServer, clock: FakeClock, http: httpx.Client, old_key: KeyPair
) -> None:
    cache = JwksCache(
        JsonFetcher(http), issuer=provider.issuer, jwks_url=provider.jwks_url, clock=clock
    )

    (key,) = cache.signing_keys()

    assert key.kid == old_key.kid
    assert (provider.hits[DISCOVERY_PATH], provider.hits[JWKS_PATH]) == (0, 1)


def test_a_key_set_with_no_usable_key_keeps_the_old_keys(
    cache: JwksCache, provider: JwksServer, old_key: KeyPair, clock: FakeClock
) -> None:
    cache.signing_keys()
    provider.keys = [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]
    clock.advance(TTL)

    (key,) = cache.signing_keys()

    assert key.kid == old_key.kid


def test_keys_that_cannot_be_trusted_or_used_are_skipped(old_key: KeyPair) -> None:
    weak = KeyPair.generate("RS256", rsa_bits=1024)
    private = KeyPair.generate("ES256")
    private_jwk = private.jwk()
    private_jwk["d"] = "AAAA"  # a private member: the key is compromised
    document = {
        "keys": [
            old_key.jwk(),
            old_key.jwk(kid="for-encryption", use="enc"),
            old_key.jwk(kid="verify-not-allowed", key_ops=["encrypt"]),
            weak.jwk(),
            private_jwk,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not-a-key",
        ]
    }

    assert [key.kid for key in parse_jwks(document)] == [old_key.kid]


def test_jwk_alg_limits_the_key_to_that_algorithm(old_key: KeyPair) -> None:
    (key,) = parse_jwks({"keys": [old_key.jwk(alg="PS256")]})

    assert key.fits("PS256")
    assert not key.fits("RS256")


def test_concurrent_requests_on_a_cold_cache_share_one_fetch(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair
) -> None:
    token = old_key.sign(claims_for(provider.issuer))
    provider.release.clear()  # hold the provider's answers until every thread has asked
    results: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(verifier.verify(bearer(token)).subject)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: provider.hits[DISCOVERY_PATH] == 1)
    provider.release.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert results == ["alice"] * 8
    assert (provider.hits[DISCOVERY_PATH], provider.hits[JWKS_PATH]) == (1, 1)


def test_concurrent_flood_of_unknown_kids_refetches_once(
    verifier: TokenVerifier, provider: JwksServer, old_key: KeyPair
) -> None:
    verifier.verify(bearer(old_key.sign(claims_for(provider.issuer))))
    provider.release.clear()
    refused: list[str] = []
    start = threading.Barrier(16)

    def call(number: int) -> None:
        token = old_key.sign(claims_for(provider.issuer), kid=f"flood-{number}")
        start.wait(10)
        try:
            verifier.verify(bearer(token))
        except AuthenticationError as exc:
            refused.append(exc.message)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    wait_until(lambda: provider.hits[JWKS_PATH] == 2)
    provider.release.set()
    for thread in threads:
        thread.join(10)

    assert refused == ["The bearer token was signed by an unknown key."] * 16
    assert provider.hits[JWKS_PATH] == 2


def test_cached_keys_are_served_while_another_thread_refreshes_them(
    cache: JwksCache, provider: JwksServer, clock: FakeClock, old_key: KeyPair
) -> None:
    cache.signing_keys()
    clock.advance(TTL)
    provider.release.clear()
    refresher = threading.Thread(target=cache.signing_keys)
    refresher.start()
    wait_until(lambda: provider.hits[JWKS_PATH] == 2)

    # WHILE one thread waits on the provider, another gets the stale keys without waiting
    (key,) = cache.signing_keys()

    assert key.kid == old_key.kid
    provider.release.set()
    refresher.join(10)
    assert provider.hits[JWKS_PATH] == 2


def test_token_with_a_new_kid_waits_for_a_refresh_under_way(
    cache: JwksCache,
    verifier: TokenVerifier,
    provider: JwksServer,
    clock: FakeClock,
    old_key: KeyPair,
    new_key: KeyPair,
) -> None:
    cache.signing_keys()
    clock.advance(TTL)
    provider.publish(old_key, new_key)
    provider.release.clear()
    refresher = threading.Thread(target=cache.signing_keys)
    refresher.start()
    wait_until(lambda: provider.hits[JWKS_PATH] == 2)
    subjects: list[str] = []
    token = new_key.sign(claims_for(provider.issuer, sub="bob"))

    # WHILE the refresh is held, a token of the new key arrives; it must not get a 401
    caller = threading.Thread(
        target=lambda: subjects.append(verifier.verify(bearer(token)).subject)
    )
    caller.start()
    provider.release.set()
    for thread in (refresher, caller):
        thread.join(10)

    assert subjects == ["bob"]
    assert provider.hits[JWKS_PATH] == 2


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)
