"""The issuer's signing keys: found through OIDC discovery, cached, and refreshed with restraint.

One `JwksCache` serves every worker thread of a process, so a warm function fetches the keys
once per TTL. Its rules:

- While the keys are fresh (younger than `ttl`) nobody touches the network or waits.
- One thread at a time fetches. The others either keep using the keys they have or, when those
  cannot help them (no keys yet, a token's `kid` unknown), wait for that one fetch to end.
- Fetches are rationed: a refetch for an unknown `kid`, and a retry after a failed fetch, happen
  at most once per `refresh_cooldown`, so neither a flood of made-up key ids nor an identity
  provider that is down gets hammered.
- When the provider cannot be reached, expired keys stay in use for up to `stale_seconds` past
  their TTL, with a logged warning; with no usable keys left, `AuthUnavailableError` (503).

The lock guards only a few assignments; nothing waits on the network while holding it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from simpleai.errors import AuthUnavailableError
from simpleai.observability import logger

FetchJson = Callable[[str], Any]
"""GET a URL and return its JSON body; raises `OSError` or `ValueError` when it cannot."""

MIN_RSA_BITS = 2048
"""RFC 7518 section 3.3: smaller RSA keys are not to be trusted for signatures."""

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_EDDSA_CURVES = ("Ed25519", "Ed448")
_PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}


@dataclass(frozen=True)
class SigningKey:
    """One public key of the issuer's JWKS."""

    kid: str | None
    kty: str
    """`RSA`, `EC` or `OKP`; symmetric (`oct`) keys never get this far."""
    curve: str | None
    declared_algorithm: str | None
    """The JWK's own `alg`, when it names one: the key is then good for that algorithm only."""
    key: Any = field(repr=False)
    """The `cryptography` public key object, as `jwt.decode` takes it."""

    def fits(self, algorithm: str) -> bool:
        """Whether a token signed with `algorithm` may be checked against this key."""
        if self.declared_algorithm is not None and self.declared_algorithm != algorithm:
            return False
        if algorithm[:2] in ("RS", "PS"):
            return self.kty == "RSA"
        if algorithm in _EC_CURVES:
            return self.kty == "EC" and self.curve == _EC_CURVES[algorithm]
        if algorithm == "EdDSA":
            return self.kty == "OKP" and self.curve in _EDDSA_CURVES
        return False


def parse_jwks(document: Any) -> tuple[SigningKey, ...]:
    """The usable signing keys of a JWKS document (RFC 7517); unusable entries are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthUnavailableError("The identity provider's key set is malformed.")
    keys = tuple(key for key in map(_signing_key, document["keys"]) if key is not None)
    if not keys:
        raise AuthUnavailableError("The identity provider publishes no usable signing key.")
    return keys


def _signing_key(entry: Any) -> SigningKey | None:
    if not isinstance(entry, dict):
        return None
    kty, kid, alg = entry.get("kty"), entry.get("kid"), entry.get("alg")
    if kty not in _PARSERS or entry.get("use", "sig") != "sig":
        return None
    if "verify" not in entry.get("key_ops", ["verify"]):
        return None
    if "d" in entry:
        return None  # a private key published by mistake: anyone could sign with it
    if (kid is not None and not isinstance(kid, str)) or (
        alg is not None and not isinstance(alg, str)
    ):
        return None
    try:
        key = _PARSERS[kty](entry)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None  # RFC 7517 section 5: ignore keys we cannot understand
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return None
    curve = entry.get("crv")
    return SigningKey(
        kid=kid,
        kty=kty,
        curve=curve if isinstance(curve, str) else None,
        declared_algorithm=alg,
        key=key,
    )


def _names(keys: tuple[SigningKey, ...], kid: str) -> bool:
    return any(key.kid == kid for key in keys)


@dataclass
class _Fetch:
    """A fetch under way; threads that need its outcome wait on `done`."""

    done: threading.Event = field(default_factory=threading.Event)


class JwksCache:
    """The issuer's signing keys, fetched through OIDC discovery (or from `jwks_url`)."""

    def __init__(
        self,
        fetch_json: FetchJson,
        *,
        issuer: str,
        jwks_url: str | None = None,
        ttl: float = 3600,
        refresh_cooldown: float = 60,
        stale_seconds: float = 86400,
        clock: Callable[[], float] = time.monotonic,
        fetch_wait_seconds: float = 30,
    ) -> None:
        self._fetch_json = fetch_json
        self._issuer = issuer
        self._configured_jwks_url = jwks_url
        self._ttl = ttl
        self._cooldown = refresh_cooldown
        self._stale = stale_seconds
        self._clock = clock
        self._fetch_wait = fetch_wait_seconds
        self._lock = threading.Lock()
        # Guarded by _lock:
        self._keys: tuple[SigningKey, ...] = ()
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch begun, successful or not
        self._refetched_at: float | None = None  # the last rationed fetch begun
        self._last_failed = False
        self._last_error: AuthUnavailableError | None = None
        self._fetch: _Fetch | None = None
        # Touched only by the one thread that is fetching:
        self._jwks_uri: str | None = jwks_url

    @property
    def discovery_url(self) -> str:
        return self._issuer.rstrip("/") + "/.well-known/openid-configuration"

    def signing_keys(self, kid: str | None = None) -> tuple[SigningKey, ...]:
        """The usable keys: fetched first when they are not fresh, refetched (at most once per
        cooldown) when `kid` names none of them; `AuthUnavailableError` when there are none, or
        when `kid` is unknown and the provider could not be asked about it."""
        now = self._clock()
        keys, fetched_at = self._state()
        unknown_kid = kid is not None and not _names(keys, kid)
        if fetched_at is None or now - fetched_at >= self._ttl:
            # Threads whose keys are still usable need not wait for the fetch.
            can_go_on = self._usable(fetched_at, now) and not unknown_kid
            self._fetch_if_due(now, wait=not can_go_on, rationed=False)
        elif unknown_kid:
            self._fetch_if_due(now, wait=True, rationed=True)
        with self._lock:
            keys, fetched_at, failed = self._keys, self._fetched_at, self._last_failed
        if not self._usable(fetched_at, self._clock()):
            raise self._unavailable()
        if kid is not None and failed and not _names(keys, kid):
            raise self._unavailable()  # the key may be new: the caller's token may be fine
        return keys

    def refresh(self) -> bool:
        """Refetch unless a fetch began within the cooldown (joining one under way); whether the
        keys were replaced. For tokens without `kid`, which cannot say that a key is new."""
        before, _ = self._state()
        self._fetch_if_due(self._clock(), wait=True, rationed=True)
        after, _ = self._state()
        return after is not before

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
        if urlsplit(self._issuer).scheme == "https" and urlsplit(document["jwks_uri"]).scheme != (
            "https"
        ):
            raise AuthUnavailableError("The identity provider's jwks_uri is not an https URL.")
        return document

    def _state(self) -> tuple[tuple[SigningKey, ...], float | None]:
        with self._lock:
            return self._keys, self._fetched_at

    def _usable(self, fetched_at: float | None, now: float) -> bool:
        return fetched_at is not None and now - fetched_at < self._ttl + self._stale

    def _fetch_if_due(self, now: float, *, wait: bool, rationed: bool) -> None:
        """Fetch in this thread, join a fetch under way, or do nothing when none is due.

        `rationed` fetches (unknown `kid`) need the cooldown to have passed since the last
        rationed one; any fetch after a failed one needs it to have passed since that failure.
        """
        with self._lock:
            fetch, owner = self._fetch, False
            if fetch is None:
                if not self._due(now, rationed=rationed):
                    return
                fetch = self._fetch = _Fetch()
                self._attempted_at = now
                if rationed:
                    self._refetched_at = now
                owner = True
        if owner:
            self._run(fetch)
        elif wait:
            fetch.done.wait(self._fetch_wait)

    def _due(self, now: float, *, rationed: bool) -> bool:
        """Whether a fetch may begin now (called with the lock held)."""
        failed_at = self._attempted_at if self._last_failed else None
        if failed_at is not None and now - failed_at < self._cooldown:
            return False  # the provider just failed: give it the cooldown
        if rationed and self._refetched_at is not None:
            return now - self._refetched_at >= self._cooldown
        return True

    def _run(self, fetch: _Fetch) -> None:
        keys: tuple[SigningKey, ...] | None = None
        error: AuthUnavailableError | None = None
        try:
            keys = self._fetch_keys()
        except AuthUnavailableError as exc:
            error = exc
        finally:
            with self._lock:
                self._fetch = None
                if keys is not None:
                    self._keys, self._fetched_at = keys, self._clock()
                    self._last_failed, self._last_error = False, None
                else:
                    self._last_failed = True
                    self._last_error = error
                fetched_at = self._fetched_at
            fetch.done.set()
        if error is not None:
            self._warn(error, fetched_at)

    def _fetch_keys(self) -> tuple[SigningKey, ...]:
        jwks_uri = self._jwks_uri or str(self.discovery()["jwks_uri"])
        # Until this fetch succeeds, the next one discovers the jwks_uri again: it may have moved.
        self._jwks_uri = self._configured_jwks_url
        try:
            document = self._fetch_json(jwks_uri)
        except (OSError, ValueError) as exc:
            raise AuthUnavailableError(
                "The identity provider's signing keys cannot be fetched; try again later."
            ) from exc
        keys = parse_jwks(document)
        self._jwks_uri = jwks_uri
        return keys

    def _warn(self, error: AuthUnavailableError, fetched_at: float | None) -> None:
        now = self._clock()
        cause = error.__cause__
        detail = {
            "issuer": self._issuer,
            "error": error.message,
            "cause": f"{type(cause).__name__}: {cause}" if cause else None,
        }
        if self._usable(fetched_at, now):
            assert fetched_at is not None
            logger.warning(
                "identity provider unreachable; using cached signing keys",
                extra={
                    **detail,
                    "keys_age_seconds": round(now - fetched_at),
                    "usable_for_seconds": round(fetched_at + self._ttl + self._stale - now),
                },
            )
        else:
            logger.error("identity provider unreachable; no signing keys to use", extra=detail)

    def _unavailable(self) -> AuthUnavailableError:
        with self._lock:
            error, attempted_at = self._last_error, self._attempted_at
        message = (
            error.message
            if error is not None
            else "The identity provider's signing keys cannot be fetched; try again later."
        )
        elapsed = self._clock() - attempted_at if attempted_at is not None else self._cooldown
        retry_after = max(1, math.ceil(self._cooldown - elapsed))
        return AuthUnavailableError(message, headers={"Retry-After": str(retry_after)})
