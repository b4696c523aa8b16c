"""A real OIDC provider for the tests (`oidc-provider-mock` from PyPI) and a non-interactive
authorization-code flow that gets ID tokens from it.

The provider's `iss` follows the Host header of each request, so the issuer URL used to get
tokens must be the exact string the gateway is configured with. Its ID tokens carry no `kid`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock

REDIRECT_URI = "http://127.0.0.1/callback"


@dataclass
class Provider:
    issuer: str

    def id_token(
        self,
        sub: str,
        *,
        client_id: str,
        client_secret: str = "secret",
        scope: str = "openid email profile",
    ) -> str:
        """Sign `sub` in and return the ID token the provider issues to `client_id`."""
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            authorize = http.post(
                "/oauth2/authorize",
                params={
                    "client_id": client_id,
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "scope": scope,
                    "state": secrets.token_urlsafe(8),
                    "nonce": secrets.token_urlsafe(8),
                },
                data={"sub": sub},
            )
            if authorize.status_code not in (302, 303):
                raise RuntimeError(f"authorize answered {authorize.status_code}")
            code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
            token = http.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                },
                auth=(client_id, client_secret),
            )
            token.raise_for_status()
            body: dict[str, Any] = token.json()
            return str(body["id_token"])


@contextlib.contextmanager
def running_provider(users: dict[str, dict[str, Any]]) -> Iterator[Provider]:
    """Start the provider on a free loopback port; `users` maps each `sub` to its claims."""
    claims = [oidc_provider_mock.User(sub=sub, claims=extra) for sub, extra in users.items()]
    with oidc_provider_mock.run_server_in_thread(port=0, user_claims=claims) as server:
        yield Provider(issuer=f"http://localhost:{server.server_port}")
