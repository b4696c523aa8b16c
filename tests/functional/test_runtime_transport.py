"""`runtime.configure(..., ollama_connect=...)`: the Ollama transport's connections can be opened
another way (the benchmarks time the gateway in-process this way, answered at once)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from simpleai import runtime
from simpleai.settings import Settings
from tests.support.answering import answering, http_answer
from tests.support.fake_ollama import FakeOllama

ANSWER = {
    "model": "llama3.2",
    "created_at": "2026-11-19T08:26:40.123456789Z",
    "message": {"role": "assistant", "content": "From the transport."},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 3,
    "eval_count": 4,
}


def test_a_configured_connection_answers_instead_of_the_network(
    gateway: Settings, invoke: Callable[..., dict[str, Any]], fake_ollama: FakeOllama
) -> None:
    # GIVEN the runtime configured to open Ollama connections that answer every call at once
    connect, seen = answering(http_answer(json.dumps(ANSWER).encode()))
    runtime.configure(gateway, ollama_connect=connect)

    # WHEN a chat completion is served
    result = invoke("chat", "chat")

    # THEN that connection answered it, and nothing reached the Ollama server
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["choices"][0]["message"]["content"] == "From the transport."
    assert [request.split(b" ", 2)[:2] for request in seen] == [[b"POST", b"/api/chat"]]
    assert fake_ollama.requests == []


def test_configuring_again_without_a_connection_uses_the_network(
    gateway: Settings, invoke: Callable[..., dict[str, Any]], fake_ollama: FakeOllama
) -> None:
    connect, _ = answering(http_answer(b"{}", status="500 Internal Server Error"))
    runtime.configure(gateway, ollama_connect=connect)
    runtime.configure(gateway)

    result = invoke("chat", "chat")

    assert result["statusCode"] == 200
    assert len(fake_ollama.requests) == 1
