"""Bearer JWTs from an OIDC provider, verified against the issuer's JWKS.

`JwksCache` (jwks.py) finds, caches and refreshes the issuer's keys; it takes its fetcher and
clock, so tests and warm functions share one. `TokenVerifier` (verify.py) checks a token's
header, signature and claims and returns the caller's `Identity`. Neither logs a token nor puts
one in an error message.
"""

from __future__ import annotations

from simpleai.auth.jwks import FetchJson, JwksCache, SigningKey, parse_jwks
from simpleai.auth.verify import (
    ASYMMETRIC_ALGORITHMS,
    MAX_TOKEN_BYTES,
    Identity,
    TokenVerifier,
    bearer_token,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "FetchJson",
    "Identity",
    "JwksCache",
    "SigningKey",
    "TokenVerifier",
    "bearer_token",
    "parse_jwks",
]
