"""The local API on a real socket, a real OIDC provider, the Ollama stand-in and the official
`openai` client: the path a developer takes with `make run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_ollama import FakeOllama

Rows = Callable[[], list[dict[str, Any]]]


def client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)


def test_openai_client_gets_a_chat_completion_and_it_is_audited(
    local_api: str, token: Callable[..., str], audit_rows: Rows, fake_ollama: FakeOllama
) -> None:
    completion = client(f"{local_api}/v1", token("alice")).chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "Hello from the SDK"}],
    )

    assert completion.choices[0].message.content == "You said: Hello from the SDK"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 19
    (row,) = audit_rows()
    assert row["user_id"] == "alice"
    assert row["request_path"] == "/v1/chat/completions"
    assert row["response_status"] == 200
    assert json.loads(row["response_body"])["id"] == completion.id
    assert "Hello from the SDK" in row["request_body"]


def test_android_style_request_without_model_on_the_short_path(
    local_api: str, token: Callable[..., str]
) -> None:
    response = httpx.post(
        f"{local_api}/chat/completions",
        headers={"Authorization": f"Bearer {token('bob')}"},
        json={"messages": [{"role": "user", "content": "hi"}], "tools": []},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert response.headers["x-request-id"]


def test_openai_client_lists_models(local_api: str, token: Callable[..., str]) -> None:
    models = client(f"{local_api}/v1", token("alice")).models.list()

    assert [model.id for model in models.data] == ["llama3.2:latest", "llava:latest"]


def test_unauthenticated_call_is_refused_with_an_openai_error(local_api: str) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        client(f"{local_api}/v1", "not-a-jwt").chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.status_code == 401
    assert raised.value.body["type"] == "authentication_error"  # type: ignore[index]


def test_health_needs_no_token(local_api: str) -> None:
    response = httpx.get(f"{local_api}/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_unknown_route_answers_as_api_gateway_does(local_api: str) -> None:
    response = httpx.get(f"{local_api}/v2/nothing")

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
