"""Chat completions and model listing: translate, call Ollama, translate back, note for audit."""

from __future__ import annotations

import secrets
import time
from typing import Any

from simpleai.runtime import Components
from simpleai.translate import (
    JSON,
    from_ollama_chat,
    to_model,
    to_model_list,
    to_ollama_chat,
)
from simpleai.webapp import Exchange


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


async def complete(body: Any, parts: Components, exchange: Exchange) -> JSON:
    """One non-streaming chat completion."""
    config = parts.settings
    chat = to_ollama_chat(body, default_model=config.ollama_model, aliases=config.model_aliases)
    exchange.model = chat.request["model"]
    exchange.stream = chat.stream
    started = time.perf_counter()
    answer = await parts.ollama.chat(chat.request)
    exchange.upstream_latency_ms = round((time.perf_counter() - started) * 1000, 3)
    completion = from_ollama_chat(answer, model=chat.model, completion_id=new_completion_id())
    usage = completion["usage"]
    exchange.tokens_prompt = usage["prompt_tokens"]
    exchange.tokens_completion = usage["completion_tokens"]
    exchange.finish_reason = completion["choices"][0]["finish_reason"]
    return completion


async def list_models(parts: Components) -> JSON:
    return to_model_list(await parts.ollama.tags())


async def find_model(model_id: str, parts: Components) -> JSON | None:
    tags = await parts.ollama.tags()
    for entry in tags.get("models") or []:
        if isinstance(entry, dict) and model_id in (entry.get("name"), entry.get("model")):
            return to_model(entry)
    return None
