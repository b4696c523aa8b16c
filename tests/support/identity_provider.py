"""A scriptable identity provider for the authentication tests: key pairs generated in the test,
tokens signed with them, and a real HTTP server on loopback that serves the discovery document
and the JWKS, counts every request and can be told to fail.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

AUDIENCE = "simpleai-android"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"

_CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


@dataclass
class KeyPair:
    """A private signing key and its public JWK."""

    algorithm: str
    private_key: Any = field(repr=False)
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def generate(cls, algorithm: str = "RS256", *, rsa_bits: int = 2048) -> KeyPair:
        if algorithm[:2] in ("RS", "PS"):
            return cls(
                algorithm, rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
            )
        if algorithm in _CURVES:
            return cls(algorithm, ec.generate_private_key(_CURVES[algorithm]))
        if algorithm == "EdDSA":
            return cls(algorithm, ed25519.Ed25519PrivateKey.generate())
        raise ValueError(algorithm)

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK, with `kid` and `use`; `extra` adds or (value None) removes members."""
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        elif isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", **extra})
        return {name: value for name, value in jwk.items() if value is not None}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        algorithm: str | None = None,
        kid: str | bool | None = True,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A JWS of `claims`; `kid=True` names this key, a string names another, None none."""
        header = dict(headers or {})
        if kid is True:
            header["kid"] = self.kid
        elif isinstance(kid, str):
            header["kid"] = kid
        return jwt.encode(
            claims, self.private_key, algorithm=algorithm or self.algorithm, headers=header
        )


def claims_for(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Claims a good token has; `overrides` replace them, a value of None removes one."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "email": "alice@example.com",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


class JwksServer:
    """Serves discovery and JWKS documents on loopback; `hits` counts requests per path."""

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.keys: list[dict[str, Any]] = list(keys or [])
        self.down = False
        """When true, every request is answered 503."""
        self.discovery_overrides: dict[str, Any] = {}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        """Cleared to hold every answer back until it is set again."""
        self.release.set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    def publish(self, *pairs: KeyPair) -> None:
        self.keys = [pair.jwk() for pair in pairs]

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, path: str) -> tuple[int, Any]:
        with self._lock:
            self.hits[path] += 1
        self.release.wait(10)
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        if path == DISCOVERY_PATH:
            return 200, {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                **self.discovery_overrides,
            }
        if path == JWKS_PATH:
            return 200, {"keys": self.keys}
        return 404, {"error": "not_found"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
