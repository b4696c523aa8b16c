"""What `TokenVerifier` accepts and refuses, with keys generated here and a JWKS served from a
loopback HTTP server (tests/support/identity_provider.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from simpleai.auth import MAX_TOKEN_BYTES, JwksCache, TokenVerifier, bearer_token
from simpleai.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientScopeError,
    MissingTokenError,
)
from simpleai.runtime import JsonFetcher
from tests.support.identity_provider import AUDIENCE, FakeClock, JwksServer, KeyPair, claims_for

ALGORITHMS = ("RS256", "RS384", "PS256", "PS512", "ES256", "ES384", "ES512", "EdDSA")

MakeVerifier = Callable[..., TokenVerifier]


@pytest.fixture(scope="module")
def key_pairs() -> dict[str, KeyPair]:
    """One key pair per algorithm; the RSA algorithms share one RSA key, as providers do."""
    rsa = KeyPair.generate("RS256")
    pairs = {alg: KeyPair(alg, rsa.private_key, kid=rsa.kid) for alg in ALGORITHMS[:4]}
    pairs.update({alg: KeyPair.generate(alg) for alg in ALGORITHMS[4:]})
    return pairs


@pytest.fixture(scope="module")
def provider(key_pairs: dict[str, KeyPair]) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.publish(*{pair.kid: pair for pair in key_pairs.values()}.values())
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def make_verifier(provider: JwksServer, http: httpx.Client) -> MakeVerifier:
    def make(**options: Any) -> TokenVerifier:
        cache = JwksCache(JsonFetcher(http), issuer=provider.issuer, clock=FakeClock())
        options.setdefault("audience", (AUDIENCE,))
        return TokenVerifier(cache, issuer=provider.issuer, leeway=60, **options)

    return make


@pytest.fixture
def rsa(key_pairs: dict[str, KeyPair]) -> KeyPair:
    return key_pairs["RS256"]


def refusal(verifier: TokenVerifier, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as raised:
        verifier.verify(f"Bearer {token}")
    assert token not in raised.value.message
    return raised.value


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_valid_token_of_each_key_type_is_accepted(
    algorithm: str, key_pairs: dict[str, KeyPair], provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = key_pairs[algorithm].sign(claims_for(provider.issuer))

    identity = make_verifier().verify(f"Bearer {token}")

    assert (identity.subject, identity.email, identity.issuer) == (
        "alice",
        "alice@example.com",
        provider.issuer,
    )
    assert identity.client_id == AUDIENCE  # a single audience is the client (OIDC Core 2)


def test_expired_token_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, exp=int(time.time()) - 120))

    assert refusal(make_verifier(), token).message == "The bearer token has expired."


def test_token_expired_within_the_leeway_is_accepted(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, exp=int(time.time()) - 20))

    assert make_verifier().verify(f"Bearer {token}").subject == "alice"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_not_yet_valid_is_refused(
    claim: str, rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, **{claim: int(time.time()) + 600}))

    assert "not valid yet" in refusal(make_verifier(), token).message


def test_wrong_issuer_is_refused_even_when_it_differs_by_a_slash(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer + "/"))

    assert refusal(make_verifier(), token).message == "The bearer token is from another issuer."


def test_wrong_audience_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, aud="another-app"))

    assert refusal(make_verifier(), token).message == "The bearer token is for another audience."


def test_audience_list_needs_to_contain_one_accepted_audience(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, aud=["another-app", "web"]))

    identity = make_verifier(audience=("web", "cli")).verify(f"Bearer {token}")

    assert identity.subject == "alice"
    assert identity.client_id is None  # two audiences and no azp: the client is not known


@pytest.mark.parametrize("claim", ["exp", "sub", "aud"])
def test_token_without_a_required_claim_is_refused(
    claim: str, rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, **{claim: None}))

    assert refusal(make_verifier(), token).message == f"The bearer token has no '{claim}' claim."


def test_unsigned_token_alg_none_is_refused(
    provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(provider.issuer))}."

    assert "signing algorithm is not accepted" in refusal(make_verifier(), token).message


def test_hs256_token_signed_with_the_public_key_as_secret_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    # GIVEN the classic key-confusion forgery: HMAC keyed with the provider's public key
    secret = rsa.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64({'alg': 'HS256', 'kid': rsa.kid})}.{b64(claims_for(provider.issuer))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"

    assert "signing algorithm is not accepted" in refusal(make_verifier(), token).message


def test_signature_from_another_key_with_a_known_kid_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    impostor = KeyPair.generate("RS256")
    token = impostor.sign(claims_for(provider.issuer), kid=rsa.kid)

    assert refusal(make_verifier(), token).message == (
        "The bearer token's signature does not verify."
    )


def test_algorithm_that_does_not_fit_the_named_key_is_refused(
    rsa: KeyPair, key_pairs: dict[str, KeyPair], provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = key_pairs["ES256"].sign(claims_for(provider.issuer), kid=rsa.kid)

    assert "does not fit" in refusal(make_verifier(), token).message


@pytest.mark.parametrize("algorithm", ["RS256", "ES384", "EdDSA"])
def test_token_without_kid_is_tried_against_keys_of_its_type(
    algorithm: str,
    key_pairs: dict[str, KeyPair],
    provider: JwksServer,
    make_verifier: MakeVerifier,
) -> None:
    token = key_pairs[algorithm].sign(claims_for(provider.issuer), kid=None)

    assert make_verifier().verify(f"Bearer {token}").subject == "alice"


def test_token_without_kid_and_a_foreign_signature_is_refused(
    provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = KeyPair.generate("ES256").sign(claims_for(provider.issuer), kid=None)

    assert refusal(make_verifier(), token).message == (
        "The bearer token's signature does not verify."
    )


def test_token_for_a_client_not_allowed_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, azp="another-app-of-the-same-provider"))

    error = refusal(make_verifier(allowed_client_ids=("simpleai-android",)), token)

    assert "client this gateway does not accept" in error.message


@pytest.mark.parametrize(
    "claims",
    [{"azp": "simpleai-android"}, {"client_id": "simpleai-android"}, {}],
    ids=["azp", "client_id", "single-aud"],
)
def test_token_for_an_allowed_client_is_accepted(
    claims: dict[str, str], rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, **claims))

    identity = make_verifier(allowed_client_ids=("simpleai-android",)).verify(f"Bearer {token}")

    assert identity.client_id == "simpleai-android"


def test_token_without_a_required_scope_is_403_naming_the_scope(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, scope="openid email"))
    verifier = make_verifier(required_scopes=("openid", "chat"))

    with pytest.raises(InsufficientScopeError) as raised:
        verifier.verify(f"Bearer {token}")

    assert (raised.value.status, raised.value.type) == (403, "permission_error")
    assert raised.value.required_scopes == ("openid", "chat")
    assert "chat" in raised.value.message
    # identify() is what the web layer calls first, to name the caller in the audit log
    assert verifier.identify(f"Bearer {token}").scopes == ("openid", "email")


@pytest.mark.parametrize(
    "claims", [{"scope": "openid chat"}, {"scp": ["chat", "openid"]}], ids=["scope", "scp"]
)
def test_token_with_the_required_scopes_is_accepted(
    claims: dict[str, Any], rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, **claims))

    identity = make_verifier(required_scopes=("chat",)).verify(f"Bearer {token}")

    assert "chat" in identity.scopes


def test_oversized_token_is_refused_without_being_parsed(make_verifier: MakeVerifier) -> None:
    token = "a" * (MAX_TOKEN_BYTES // 2) + "." + "b" * (MAX_TOKEN_BYTES // 2) + ".c"

    assert "larger than 16 KiB" in refusal(make_verifier(), token).message


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "e30.e30", "x" * 40 + ".." + "y" * 40, "ab!.cd.ef", "a.b.c.d.e"],
)
def test_garbage_token_is_refused_as_malformed(token: str, make_verifier: MakeVerifier) -> None:
    assert refusal(make_verifier(), token).message == "The bearer token is not a well-formed JWT."


def test_token_with_critical_header_extensions_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer), headers={"crit": ["exp-ext"], "exp-ext": 1})

    # PyJWT refuses unknown critical extensions itself; the verifier's own check backs it up
    assert refusal(make_verifier(), token).message in (
        "The bearer token is not a well-formed JWT.",
        "The bearer token requires header extensions ('crit') this gateway does not support.",
    )


def test_token_with_a_non_string_sub_is_refused(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer, sub=42))

    assert "'sub'" in refusal(make_verifier(), token).message


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_token_is_a_challenge_without_error_code(header: str | None) -> None:
    with pytest.raises(MissingTokenError) as raised:
        bearer_token(header)

    assert (raised.value.status, raised.value.code) == (401, None)


def test_another_scheme_counts_as_no_bearer_token() -> None:
    with pytest.raises(MissingTokenError) as raised:
        bearer_token("Basic YWxpY2U6c2VjcmV0")

    assert "Bearer scheme" in raised.value.message


@pytest.mark.parametrize("header", ["Bearer", "Bearer a.b.c,Bearer d.e.f", "Bearer a.b.c d.e.f"])
def test_empty_or_doubled_bearer_token_is_an_invalid_request(header: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        bearer_token(header)

    assert raised.value.code == "invalid_request"


def test_scheme_name_is_case_insensitive(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    token = rsa.sign(claims_for(provider.issuer))

    assert make_verifier().verify(f"bearer {token}").subject == "alice"


def test_refusals_name_no_part_of_the_token(
    rsa: KeyPair, provider: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(allowed_client_ids=("web",), required_scopes=("chat",))
    tokens = [
        rsa.sign(claims_for(provider.issuer, exp=int(time.time()) - 600)),
        rsa.sign(claims_for(provider.issuer, aud="x")),
        rsa.sign(claims_for(provider.issuer)),  # client not allowed
        rsa.sign(claims_for(provider.issuer, azp="web")),  # scope missing
        rsa.sign(claims_for(provider.issuer), kid="no-such-key"),
    ]
    for token in tokens:
        with pytest.raises(GatewayError) as raised:
            verifier.verify(f"Bearer {token}")
        for part in token.split("."):
            assert part not in raised.value.message


class Decodes:
    """Counts the signature checks the verifier makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import simpleai.auth.verify as verify

        self.count = 0
        real = verify.jwt.decode

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(verify.jwt, "decode", counting)


def test_a_verified_token_is_trusted_again_without_a_signature_check(
    rsa: KeyPair,
    provider: JwksServer,
    make_verifier: MakeVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes = Decodes(monkeypatch)
    verifier = make_verifier()
    token = rsa.sign(claims_for(provider.issuer))

    first = verifier.verify(f"Bearer {token}")
    second = verifier.verify(f"Bearer {token}")

    assert first == second
    assert decodes.count == 1


@pytest.mark.parametrize(
    ("lifetime", "later"),
    [
        pytest.param(3600, 301, id="five minutes at most"),
        # Real time has not moved: the token still passes the signature check within leeway.
        pytest.param(100, 101, id="until the token expires"),
    ],
)
def test_cached_trust_ends(
    lifetime: int,
    later: int,
    rsa: KeyPair,
    provider: JwksServer,
    make_verifier: MakeVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes = Decodes(monkeypatch)
    now = [time.time()]
    verifier = make_verifier(clock=lambda: now[0])
    token = rsa.sign(claims_for(provider.issuer, exp=int(now[0]) + lifetime))
    verifier.verify(f"Bearer {token}")

    now[0] += later
    verifier.verify(f"Bearer {token}")

    assert decodes.count == 2


def test_refused_tokens_are_never_cached(
    rsa: KeyPair,
    provider: JwksServer,
    make_verifier: MakeVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes = Decodes(monkeypatch)
    verifier = make_verifier(allowed_client_ids=("another-app",))
    token = rsa.sign(claims_for(provider.issuer))

    for _ in range(2):
        refusal(verifier, token)

    assert decodes.count == 2
