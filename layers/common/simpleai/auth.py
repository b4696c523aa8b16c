"""Bearer JWTs from an OIDC provider, verified against the issuer's JWKS.

`JwksCache` finds and caches the issuer's keys (it takes its fetcher, so tests and warm functions
share one); `TokenVerifier` checks a token's signature and claims and returns the caller's
`Identity`. Neither logs a token nor puts one in an error message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

from simpleai.errors import AuthenticationError, AuthUnavailableError

FetchJson = Callable[[str], Any]
"""GET a URL and return its JSON body; raises `OSError` or `ValueError` when it cannot."""

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True)
class Identity:
    """Who a verified token says the caller is."""

    subject: str
    issuer: str
    email: str | None = None
    client_id: str | None = None
    scopes: tuple[str, ...] = ()


class JwksCache:
    """The issuer's signing keys, fetched through OIDC discovery and cached for `ttl` seconds."""

    def __init__(
        self,
        fetch_json: FetchJson,
        *,
        issuer: str,
        jwks_url: str | None = None,
        ttl: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_json = fetch_json
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._ttl = ttl
        self._clock = clock
        self._keys: list[PyJWK] = []
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    @property
    def discovery_url(self) -> str:
        return self._issuer.rstrip("/") + "/.well-known/openid-configuration"

    def signing_keys(self) -> list[PyJWK]:
        """The cached keys, fetched first when the cache is empty or older than the TTL."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self._ttl:
                self._keys = self._fetch_keys()
                self._fetched_at = now
            return self._keys

    def discovery(self) -> dict[str, Any]:
        """The issuer's OpenID discovery document, checked to name this issuer."""
        try:
            document = self._fetch_json(self.discovery_url)
        except (OSError, ValueError) as exc:
            raise AuthUnavailableError(
                "The identity provider's discovery document cannot be fetched."
            ) from exc
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise AuthUnavailableError(
                "The identity provider's discovery document names no jwks_uri."
            )
        if document.get("issuer") != self._issuer:
            raise AuthUnavailableError(
                "The identity provider's discovery document names another issuer."
            )
        return document

    def _fetch_keys(self) -> list[PyJWK]:
        jwks_url = self._jwks_url or str(self.discovery()["jwks_uri"])
        try:
            document = self._fetch_json(jwks_url)
        except (OSError, ValueError) as exc:
            raise AuthUnavailableError(
                "The identity provider's signing keys cannot be fetched; try again later."
            ) from exc
        return _parse_jwks(document)


def _parse_jwks(document: Any) -> list[PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthUnavailableError("The identity provider's key set is malformed.")
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(PyJWK(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # keys of a type we cannot use are skipped, as RFC 7517 allows
    return keys


class TokenVerifier:
    """Checks `Authorization: Bearer <JWT>` and returns the caller's identity."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: Sequence[str],
        leeway: float = 60,
    ) -> None:
        self._jwks = keys
        self._issuer = issuer
        self._audience = list(audience)
        self._leeway = leeway

    def verify(self, authorization: str | None) -> Identity:
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthenticationError("The bearer token is not a well-formed JWT.") from exc
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise AuthenticationError("The bearer token's signing algorithm is not accepted.")
        claims = self._decode(token, algorithm, header.get("kid"))
        return _identity(claims)

    def _decode(self, token: str, algorithm: str, kid: str | None) -> dict[str, Any]:
        candidates = [key for key in self._jwks.signing_keys() if kid is None or key.key_id == kid]
        if not candidates:
            raise AuthenticationError("The bearer token was signed by an unknown key.")
        error: jwt.PyJWTError | None = None
        for key in candidates:
            try:
                return jwt.decode(
                    token,
                    key=key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError as exc:
                error = exc
            except jwt.ExpiredSignatureError as exc:
                raise AuthenticationError("The bearer token has expired.") from exc
            except jwt.ImmatureSignatureError as exc:
                raise AuthenticationError("The bearer token is not valid yet.") from exc
            except jwt.InvalidAudienceError as exc:
                raise AuthenticationError("The bearer token is for another audience.") from exc
            except jwt.InvalidIssuerError as exc:
                raise AuthenticationError("The bearer token is from another issuer.") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise AuthenticationError(f"The bearer token has no '{exc.claim}' claim.") from exc
            except jwt.PyJWTError as exc:
                error = exc
        raise AuthenticationError("The bearer token's signature does not verify.") from error


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise AuthenticationError(
            "Missing bearer token: send 'Authorization: Bearer <token>'.", code="invalid_request"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "The Authorization header must use the Bearer scheme.", code="invalid_request"
        )
    return token.strip()


def _identity(claims: dict[str, Any]) -> Identity:
    scope = claims.get("scope") or claims.get("scp") or ()
    scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(map(str, scope))
    email = claims.get("email") or claims.get("preferred_username")
    client_id = claims.get("azp") or claims.get("client_id")
    return Identity(
        subject=str(claims["sub"]),
        issuer=str(claims["iss"]),
        email=str(email) if email else None,
        client_id=str(client_id) if client_id else None,
        scopes=scopes,
    )
