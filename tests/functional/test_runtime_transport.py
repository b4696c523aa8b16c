"""`runtime.configure(..., ollama_transport=...)`: the Ollama client's network can be replaced
(the benchmarks time the gateway in-process this way, with no socket)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from simpleai import runtime
from simpleai.settings import Settings
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


def test_a_configured_transport_answers_instead_of_the_network(
    gateway: Settings, invoke: Callable[..., dict[str, Any]], fake_ollama: FakeOllama
) -> None:
    # GIVEN the runtime configured with a transport that answers every Ollama call itself
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=ANSWER)

    runtime.configure(gateway, ollama_transport=httpx.MockTransport(answer))

    # WHEN a chat completion is served
    result = invoke("chat", "chat")

    # THEN the transport answered it, and nothing reached the Ollama server
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["choices"][0]["message"]["content"] == "From the transport."
    assert seen == ["/api/chat"]
    assert fake_ollama.requests == []


def test_configuring_again_without_a_transport_uses_the_network(
    gateway: Settings, invoke: Callable[..., dict[str, Any]], fake_ollama: FakeOllama
) -> None:
    runtime.configure(gateway, ollama_transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    runtime.configure(gateway)

    result = invoke("chat", "chat")

    assert result["statusCode"] == 200
    assert len(fake_ollama.requests) == 1
