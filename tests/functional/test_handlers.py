"""Both functions' real Lambda handlers, invoked with the API Gateway events in events/."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fake_ollama import FakeOllama, Fault

Invoke = Callable[..., dict[str, Any]]
Rows = Callable[[], list[dict[str, Any]]]


def body_of(result: dict[str, Any]) -> Any:
    return json.loads(result["body"])


def test_health_answers_ok_without_a_token(invoke: Invoke) -> None:
    result = invoke("health", "health")

    assert result["statusCode"] == 200
    assert body_of(result)["status"] == "ok"
    assert body_of(result)["version"]


def test_deep_health_reports_each_dependency(invoke: Invoke) -> None:
    result = invoke("health", "health-deep")

    assert result["statusCode"] == 200
    checks = body_of(result)["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "ollama": True,
        "audit": True,
        "oidc": True,
    }


def test_deep_health_is_503_when_ollama_is_down(invoke: Invoke, fake_ollama: FakeOllama) -> None:
    fake_ollama.stop()

    result = invoke("health", "health-deep")

    assert result["statusCode"] == 503
    report = body_of(result)
    assert report["checks"]["ollama"]["ok"] is False
    assert report["checks"]["audit"]["ok"] is True


def test_chat_event_gets_an_openai_completion(invoke: Invoke, fake_ollama: FakeOllama) -> None:
    result = invoke("chat", "chat")

    assert result["statusCode"] == 200
    completion = body_of(result)
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    assert completion["model"] == "llama3.2"  # the Android client names no model
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "You said: Say hello.",
    }
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    sent = fake_ollama.requests[-1]
    assert sent["stream"] is False
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_chat_is_audited_with_the_callers_identity(invoke: Invoke, audit_rows: Rows) -> None:
    result = invoke("chat", "chat", user="bob")

    rows = audit_rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["user_id"] == "bob"
    assert row["user_email"] == "bob@example.com"
    assert row["request_path"] == "/chat/completions"
    assert row["request_id"] == "evt-chat"
    assert row["response_status"] == 200
    assert json.loads(row["response_body"]) == body_of(result)
    assert json.loads(row["request_body"])["messages"][1]["content"] == "Say hello."
    assert (row["model_used"], row["tokens_prompt"], row["tokens_completion"]) == (
        "llama3.2",
        12,
        7,
    )
    assert row["client_ip"] == "203.0.113.7"
    assert row["latency_ms"] > 0


def test_chat_without_token_is_401_and_still_audited(invoke: Invoke, audit_rows: Rows) -> None:
    result = invoke("chat", "chat-no-token")

    assert result["statusCode"] == 401
    assert body_of(result)["error"]["type"] == "authentication_error"
    assert result["headers"]["www-authenticate"].startswith("Bearer")
    (row,) = audit_rows()
    assert row["response_status"] == 401
    assert row["error_type"] == "authentication_error"
    assert row["user_id"] is None
    assert "Say hello." in row["request_body"]


@pytest.mark.parametrize(
    ("event_name", "path"),
    [
        ("chat", "/chat/completions"),
        ("chat-v1", "/v1/chat/completions"),
        ("chat-stream", "/v1/chat/completions"),
        ("models", "/v1/models"),
        ("models", "/models"),
        ("model", "/v1/models/llama3.2:latest"),
        ("model", "/models/llama3.2:latest"),
    ],
)
def test_every_chat_route_refuses_a_caller_without_a_token(
    invoke: Invoke, fake_ollama: FakeOllama, event_name: str, path: str
) -> None:
    result = invoke("chat", event_name, user=None, path=path)

    assert result["statusCode"] == 401
    assert body_of(result)["error"]["type"] == "authentication_error"
    assert fake_ollama.paths == []  # nothing reached Ollama


def test_models_event_lists_ollama_models(invoke: Invoke) -> None:
    result = invoke("chat", "models")

    assert result["statusCode"] == 200
    listing = body_of(result)
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == ["llama3.2:latest", "llava:latest"]
    assert all(model["object"] == "model" and model["owned_by"] for model in listing["data"])


def test_one_model_by_id(invoke: Invoke) -> None:
    result = invoke("chat", "model")

    assert result["statusCode"] == 200
    assert body_of(result)["id"] == "llama3.2:latest"


def test_tools_event_is_answered(invoke: Invoke, fake_ollama: FakeOllama) -> None:
    result = invoke("chat", "chat-tools")

    assert result["statusCode"] == 200
    assert fake_ollama.requests[-1]["messages"][-1]["content"].startswith("What is the weather")


def test_ollama_failure_is_an_openai_error_and_audited(
    invoke: Invoke, fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    fake_ollama.queue(Fault(status=500, error="llama runner process has terminated"))

    result = invoke("chat", "chat")

    assert result["statusCode"] == 502
    error = body_of(result)["error"]
    assert error["type"] == "upstream_error"
    assert "llama runner process has terminated" in error["message"]
    assert audit_rows()[-1]["response_status"] == 502


def test_malformed_json_is_400_and_audited(invoke: Invoke, audit_rows: Rows) -> None:
    result = invoke("chat", "chat", raw_body="{not json")

    assert result["statusCode"] == 400
    assert body_of(result)["error"]["type"] == "invalid_request_error"
    (row,) = audit_rows()
    assert (row["response_status"], row["request_body"]) == (400, "{not json")
    assert row["error_type"] == "invalid_request_error"
