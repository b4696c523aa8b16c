"""Bearer JWTs checked the way the strictest validators check them (RFC 8725, RFC 6750, the
AWS API Gateway JWT authorizer): asymmetric signatures only, with a key whose type fits the
token's `alg`; `exp` required, `nbf` and `iat` honoured with a leeway; exact `iss`; an accepted
`aud`; optionally an allowed client and required scopes.

Refusals are `AuthenticationError` (401), `InsufficientScopeError` (403) or, when the issuer's
keys cannot be had, `AuthUnavailableError` (503). Their messages say what is wrong and never
echo the token or any part of it.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from simpleai.auth.jwks import JwksCache, SigningKey
from simpleai.errors import AuthenticationError, InsufficientScopeError, MissingTokenError

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

MAX_TOKEN_BYTES = 16 * 1024

VERIFIED_CACHE_SIZE = 1024
VERIFIED_CACHE_SECONDS = 300.0
"""A verified token is trusted again without a signature check until it expires, for at most
this long: a warm function then pays the RSA check once per caller and token, and a token
whose key was withdrawn stops working within five minutes (API Gateway's authorizer caches too)."""

# A JWS in compact serialisation: three base64url parts (the signature empty for alg none).
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Identity:
    """Who a verified token says the caller is."""

    subject: str
    issuer: str
    email: str | None = None
    """`email`, or `preferred_username` when the token has no email."""
    client_id: str | None = None
    """The client the token was issued to: `azp`, `client_id`, or a single `aud`."""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Trusted:
    """A token that passed every check: until when, who, and against which key set."""

    until: float
    identity: Identity
    kid: str | None
    keys: tuple[SigningKey, ...]


class TokenVerifier:
    """Checks `Authorization: Bearer <JWT>` and returns the caller's identity."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: Sequence[str],
        leeway: float = 60,
        allowed_client_ids: Sequence[str] = (),
        required_scopes: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jwks = keys
        self._clock = clock
        self._verified: OrderedDict[str, _Trusted] = OrderedDict()
        self._issuer = issuer
        self._audience = list(audience)
        self._leeway = leeway
        self._allowed_client_ids = frozenset(allowed_client_ids)
        self._required_scopes = tuple(required_scopes)

    def verify(self, authorization: str | None) -> Identity:
        """The caller's identity, once the token and its scopes pass every check."""
        identity = self.identify(authorization)
        self.require_scopes(identity)
        return identity

    def identify(self, authorization: str | None) -> Identity:
        """The caller's identity from a token that passes every check but the scope check.

        Apart so that a caller refused for lacking scopes can still be named in the audit log.
        """
        token = bearer_token(authorization)
        now = self._clock()
        trusted = self._verified.get(token)
        # Trust holds while the key set it was checked against is still the current one: a
        # refetch (rotation, a retired key) sends every token through the full check again.
        if (
            trusted is not None
            and now < trusted.until
            and self._jwks.signing_keys(trusted.kid) is trusted.keys
        ):
            return trusted.identity
        algorithm, kid = _checked_header(token)
        claims = self._verified_claims(token, algorithm, kid)
        identity = _identity(claims)
        if self._allowed_client_ids and identity.client_id not in self._allowed_client_ids:
            raise AuthenticationError(
                "The bearer token was issued to a client this gateway does not accept."
            )
        # `exp` is wall-clock time, the cache runs on the (monotonic) clock: trust ends at the
        # earlier of the token's expiry and the cache's own bound.
        lifetime = min(VERIFIED_CACHE_SECONDS, float(claims["exp"]) - time.time())
        keys = self._jwks.signing_keys(kid)
        self._remember(token, _Trusted(now + lifetime, identity, kid, keys))
        return identity

    def _remember(self, token: str, trusted: _Trusted) -> None:
        self._verified[token] = trusted
        self._verified.move_to_end(token)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def require_scopes(self, identity: Identity) -> None:
        missing = [scope for scope in self._required_scopes if scope not in identity.scopes]
        if missing:
            raise InsufficientScopeError(
                f"The bearer token lacks the scope(s) {' '.join(missing)}.",
                required_scopes=self._required_scopes,
            )

    def _verified_claims(self, token: str, algorithm: str, kid: str | None) -> dict[str, Any]:
        keys = self._jwks.signing_keys(kid)
        if kid is not None:
            named = [key for key in keys if key.kid == kid]
            if not named:
                raise AuthenticationError("The bearer token was signed by an unknown key.")
            fitting = [key for key in named if key.fits(algorithm)]
            if not fitting:
                raise AuthenticationError(
                    "The bearer token's algorithm does not fit the key it names."
                )
            claims = self._decode(token, algorithm, fitting)
        else:
            # Without a `kid`, every key whose type fits the `alg` is tried; a miss may mean the
            # provider rotated its keys, which only a (rationed) refetch can tell.
            claims = self._decode(token, algorithm, _fitting(keys, algorithm))
            if claims is None and self._jwks.refresh():
                claims = self._decode(
                    token, algorithm, _fitting(self._jwks.signing_keys(), algorithm)
                )
        if claims is None:
            raise AuthenticationError("The bearer token's signature does not verify.")
        return claims

    def _decode(self, token: str, algorithm: str, keys: list[SigningKey]) -> dict[str, Any] | None:
        """The token's claims, checked, from the first key whose signature verifies; None when
        no key's does."""
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={
                        "verify_signature": True,
                        "verify_exp": True,
                        "verify_nbf": True,
                        "verify_iat": True,
                        "verify_aud": True,
                        "verify_iss": True,
                        "require": ["exp", "iss", "aud", "sub"],
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise _refusal(exc) from exc
            return claims
        return None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, checked for shape and size."""
    if authorization is None or not authorization.strip():
        raise MissingTokenError("Missing bearer token: send 'Authorization: Bearer <token>'.")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError("The Authorization header must use the Bearer scheme.")
    token = rest.strip()
    if not token:
        raise AuthenticationError(
            "The Authorization header has no token after 'Bearer'.", code="invalid_request"
        )
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError(f"The bearer token is larger than {MAX_TOKEN_BYTES // 1024} KiB.")
    if _JWS_COMPACT.fullmatch(token):
        return token
    # Only the refusal's wording is decided here, off the hot path.
    if "," in token or any(char.isspace() for char in token):
        # API Gateway joins repeated headers with commas: two tokens were sent.
        raise AuthenticationError(
            "Send exactly one bearer token in one Authorization header.", code="invalid_request"
        )
    raise AuthenticationError("The bearer token is not a well-formed JWT.")


def _checked_header(token: str) -> tuple[str, str | None]:
    """(alg, kid) of a token whose header asks for nothing this gateway refuses."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError("The bearer token is not a well-formed JWT.") from exc
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise AuthenticationError(
            "The bearer token's signing algorithm is not accepted; accepted: "
            + ", ".join(ASYMMETRIC_ALGORITHMS)
            + "."
        )
    if "crit" in header:
        raise AuthenticationError(
            "The bearer token requires header extensions ('crit') this gateway does not support."
        )
    if kid is not None and not isinstance(kid, str):
        raise AuthenticationError("The bearer token's 'kid' header is not a string.")
    return str(algorithm), kid


def _fitting(keys: Sequence[SigningKey], algorithm: str) -> list[SigningKey]:
    return [key for key in keys if key.fits(algorithm)]


def _refusal(exc: jwt.PyJWTError) -> AuthenticationError:
    """A PyJWT error as the 401 a caller can act on (PyJWT's own texts are not passed on)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return AuthenticationError("The bearer token has expired.")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return AuthenticationError("The bearer token is not valid yet (nbf or iat in the future).")
    if isinstance(exc, jwt.InvalidAudienceError):
        return AuthenticationError("The bearer token is for another audience.")
    if isinstance(exc, jwt.InvalidIssuerError):
        return AuthenticationError("The bearer token is from another issuer.")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AuthenticationError(f"The bearer token has no '{exc.claim}' claim.")
    if isinstance(exc, InvalidSubjectError):
        return AuthenticationError("The bearer token's 'sub' claim is not a string.")
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return AuthenticationError("The bearer token's 'iat' claim is not a number.")
    if isinstance(exc, jwt.DecodeError):
        return AuthenticationError("The bearer token's claims are malformed.")
    return AuthenticationError("The bearer token is not valid.")


def _identity(claims: dict[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("The bearer token's 'sub' claim is not a non-empty string.")
    return Identity(
        subject=subject,
        issuer=str(claims["iss"]),
        email=_text(claims.get("email")) or _text(claims.get("preferred_username")),
        client_id=_client_id(claims),
        scopes=_scopes(claims),
    )


def _client_id(claims: dict[str, Any]) -> str | None:
    """OIDC Core 2: `azp` names the client; without it, a single audience is the client."""
    for name in ("azp", "client_id"):
        if name in claims:
            return _text(claims[name])
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    return _text(audience)


def _scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    """`scope` (RFC 9068: space-separated) or `scp` (a list, or a string, by provider)."""
    scope = claims.get("scope", claims.get("scp"))
    if isinstance(scope, str):
        return tuple(scope.split())
    if isinstance(scope, list):
        return tuple(item for item in scope if isinstance(item, str))
    return ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
