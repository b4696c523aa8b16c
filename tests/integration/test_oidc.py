"""Authentication end to end: real ID tokens from oidc-provider-mock, sent through the local API
(our `sam local start-api`) to the real handlers, and the audit rows they leave behind."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from simpleai import runtime
from simpleai.settings import Settings

Rows = Callable[[], list[dict[str, Any]]]
Token = Callable[..., str]
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


def client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=20)


def post_chat(local_api: str, headers: Any) -> httpx.Response:
    return httpx.post(f"{local_api}/v1/chat/completions", headers=headers, json=CHAT, timeout=20)


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload))
    claims["sub"] = "mallory"
    return ".".join([header, _b64encode(json.dumps(claims).encode()), signature])


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tokens_of_two_users_are_accepted_and_audited_under_their_names(
    local_api: str, token: Token, audit_rows: Rows
) -> None:
    for user in ("alice", "bob", "alice"):
        completion = client(local_api, token(user)).chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert completion.choices[0].finish_reason == "stop"

    rows = audit_rows()
    assert [row["user_id"] for row in rows] == ["alice", "bob", "alice"]
    assert [row["user_email"] for row in rows] == [
        "alice@example.com",
        "bob@example.com",
        "alice@example.com",
    ]
    assert {row["client_id"] for row in rows} == {"simpleai-android"}
    assert {row["response_status"] for row in rows} == {200}


def test_refused_requests_are_audited_with_the_reason_and_no_token(
    local_api: str, token: Token, audit_rows: Rows, gateway: Settings
) -> None:
    # GIVEN tokens that are each wrong in one way
    other_app = token("alice", client_id="another-app")
    forged = tampered(token("bob"))
    oversized = token("alice") + "." + "A" * (17 * 1024)
    attempts = [
        ({"Authorization": f"Bearer {other_app}"}, "another audience"),
        ({"Authorization": f"Bearer {forged}"}, "signature does not verify"),
        ({"Authorization": f"Bearer {oversized}"}, "larger than 16 KiB"),
        ({"Authorization": f"Basic {other_app}"}, "Bearer scheme"),
        ({}, "Missing bearer token"),
    ]

    for headers, reason in attempts:
        response = post_chat(local_api, headers)
        assert response.status_code == 401
        assert reason in response.json()["error"]["message"]

    # THEN every refusal is audited, anonymously, with its reason
    rows = audit_rows()
    assert len(rows) == len(attempts)
    for row, (_, reason) in zip(rows, attempts, strict=True):
        assert (row["response_status"], row["error_type"]) == (401, "authentication_error")
        assert row["user_id"] is None
        assert reason in json.loads(row["response_body"])["error"]["message"]
    # AND no token, nor any part of one, is anywhere in the database's files
    stored = b"".join(path.read_bytes() for path in gateway.database_path.parent.glob("audit.db*"))
    assert b"another audience" in stored  # the files read are the ones the rows are in
    for secret in (other_app, forged):
        for part in secret.split("."):
            assert part.encode() not in stored


def test_challenges_follow_rfc_6750(local_api: str, token: Token) -> None:
    no_token = post_chat(local_api, {})
    bad_token = post_chat(local_api, {"Authorization": f"Bearer {tampered(token('alice'))}"})
    two_headers = post_chat(
        local_api,
        [
            ("Authorization", f"Bearer {token('alice')}"),
            ("Authorization", f"Bearer {token('bob')}"),
        ],
    )

    assert no_token.headers["www-authenticate"] == 'Bearer realm="simpleai-gateway"'
    assert no_token.json()["error"]["type"] == "authentication_error"
    assert bad_token.headers["www-authenticate"] == (
        'Bearer realm="simpleai-gateway", error="invalid_token", '
        'error_description="The bearer token\'s signature does not verify."'
    )
    assert two_headers.status_code == 401
    assert 'error="invalid_request"' in two_headers.headers["www-authenticate"]


def test_missing_scope_is_403_and_audited_under_the_verified_caller(
    local_api: str, token: Token, audit_rows: Rows, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(oidc_required_scopes=("chat",)))

    with pytest.raises(openai.PermissionDeniedError) as raised:
        client(local_api, token("bob")).chat.completions.create(**CHAT)  # type: ignore[call-overload]

    response = raised.value.response
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert response.headers["www-authenticate"].endswith(', scope="chat"')
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    (row,) = audit_rows()
    assert (row["user_id"], row["response_status"], row["error_type"]) == (
        "bob",
        403,
        "permission_error",
    )


def test_token_minted_for_another_client_of_the_provider_is_refused(
    local_api: str, token: Token, make_settings: Callable[..., Settings]
) -> None:
    # GIVEN a gateway that accepts two audiences but only the Android app as client
    runtime.configure(
        make_settings(
            oidc_audience=("simpleai-android", "reporting"),
            oidc_allowed_client_ids=("simpleai-android",),
        )
    )

    accepted = post_chat(local_api, {"Authorization": f"Bearer {token('alice')}"})
    refused = post_chat(
        local_api, {"Authorization": f"Bearer {token('alice', client_id='reporting')}"}
    )

    assert accepted.status_code == 200
    assert refused.status_code == 401
    assert "client this gateway does not accept" in refused.json()["error"]["message"]


def test_unreachable_provider_is_503_and_audited(
    local_api: str, token: Token, audit_rows: Rows, make_settings: Callable[..., Settings]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    runtime.configure(make_settings(oidc_jwks_url=f"http://127.0.0.1:{dead_port}/jwks"))

    response = post_chat(local_api, {"Authorization": f"Bearer {token('alice')}"})

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "authentication_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    (row,) = audit_rows()
    assert (row["response_status"], row["error_type"]) == (503, "authentication_unavailable")
