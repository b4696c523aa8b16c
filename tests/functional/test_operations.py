"""What operators rely on: size limits, response headers, JSON logs and EMF metrics."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from simpleai import runtime
from simpleai.settings import Settings

Invoke = Callable[..., dict[str, Any]]
Rows = Callable[[], list[dict[str, Any]]]


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_a_body_over_the_limit_is_413_and_audited(
    invoke: Invoke, audit_rows: Rows, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(max_request_bytes=2048))

    result = invoke("chat", "chat", body={"messages": [{"role": "user", "content": "x" * 4096}]})

    assert result["statusCode"] == 413
    assert json.loads(result["body"])["error"]["code"] == "request_too_large"
    (row,) = audit_rows()
    assert row["response_status"] == 413
    assert row["request_body"] == "<request body over 2048 bytes>"


def test_nesting_past_the_parsers_recursion_limit_is_a_400(invoke: Invoke) -> None:
    result = invoke("chat", "chat", raw_body="[" * 100_000 + "]" * 100_000)

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["type"] == "invalid_request_error"


def test_a_number_json_cannot_carry_is_a_400_and_audited(invoke: Invoke, audit_rows: Rows) -> None:
    tool = '{"type": "function", "function": {"name": "f", "parameters": {"default": NaN}}}'
    raw = '{"messages": [{"role": "user", "content": "Hi"}], "tools": [' + tool + "]}"

    result = invoke("chat", "chat", raw_body=raw)

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["type"] == "invalid_request_error"
    (row,) = audit_rows()
    assert (row["response_status"], row["error_type"]) == (400, "invalid_request_error")


@pytest.mark.parametrize("event", ["chat", "chat-no-token", "health"])
def test_every_answer_is_uncacheable_and_carries_the_request_id(invoke: Invoke, event: str) -> None:
    result = invoke("health" if event == "health" else "chat", event)

    headers = result["headers"]
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-request-id"] == f"evt-{event}"


def test_access_line_is_json_with_the_request_id_and_no_secret(
    invoke: Invoke, log_output: io.StringIO
) -> None:
    invoke("chat", "chat", user="alice")

    output = log_output.getvalue()
    access = [line for line in json_lines(output) if line.get("message") == "request"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "evt-chat"
    assert line["correlation_id"] == "evt-chat"
    assert (line["status"], line["user"], line["model"]) == (200, "alice", "llama3.2")
    assert line["tokens_prompt"] == 12
    assert "Bearer" not in output
    assert "eyJ" not in output  # no JWT (they all start with a base64 '{"')
    assert "Say hello." not in output  # no prompt


def test_metrics_are_emitted_as_emf_with_function_and_model(
    invoke: Invoke, log_output: io.StringIO
) -> None:
    invoke("chat", "chat")
    invoke("chat", "chat-no-token")

    documents = [line for line in json_lines(log_output.getvalue()) if "_aws" in line]
    success = next(doc for doc in documents if doc.get("model") == "llama3.2")
    assert success["function"] == "ChatFunction"
    assert success["Requests"] == 1
    assert success["PromptTokens"] == 12
    assert success["CompletionTokens"] == 7
    assert "Latency" in success and "UpstreamLatency" in success
    (declared,) = success["_aws"]["CloudWatchMetrics"]
    assert declared["Namespace"] == "SimpleAIGateway"
    assert declared["Dimensions"] == [["function", "model", "service"]]
    assert {metric["Name"] for metric in declared["Metrics"]} <= set(success)
    by_type = [doc for doc in documents if "ErrorsByType" in doc]
    assert [doc["error_type"] for doc in by_type] == ["authentication_error"]


def test_too_many_messages_are_refused_before_ollama_is_called(
    invoke: Invoke, make_settings: Callable[..., Settings], fake_ollama: Any
) -> None:
    runtime.configure(make_settings(max_messages=3))

    result = invoke("chat", "chat", body={"messages": [{"role": "user", "content": "x"}] * 4})

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["param"] == "messages"
    assert fake_ollama.requests == []


def test_cors_answers_name_an_allowed_origin_only(
    invoke: Invoke, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(cors_origins=("https://app.example",)))

    allowed = invoke("health", "health", headers={"origin": "https://app.example"})
    other = invoke("health", "health", headers={"origin": "https://evil.example"})

    assert allowed["headers"]["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other["headers"]
