"""OpenAI Chat Completions <-> Ollama `/api/chat`, as pure functions.

No I/O and no logging here: JSON-shaped values in, JSON-shaped values out, so that every rule is
tested table-driven (tests/unit/test_translate.py against tests/unit/cases/*.json). Invalid input
raises `InvalidRequestError` with `param` naming the offending field; a malformed upstream answer
raises `UpstreamError`. docs/compatibility.md is the human-readable version of these rules.

    requests.py   OpenAI request -> Ollama request (`to_ollama_chat`)
    responses.py  Ollama answer -> chat.completion (`from_ollama_chat`), ids
    stream.py     Ollama stream objects -> chat.completion.chunk, SSE frames
    models.py     /api/tags -> model list and model objects
"""

from __future__ import annotations

from simpleai.translate.models import find_model, to_model, to_model_list
from simpleai.translate.requests import OllamaChat, to_ollama_chat, to_ollama_messages
from simpleai.translate.responses import (
    created_timestamp,
    finish_reason,
    from_ollama_chat,
    new_call_id,
    new_completion_id,
    to_openai_tool_call,
    usage,
)
from simpleai.translate.stream import SSE_DONE, StreamTranslator, sse_event
from simpleai.translate.types import JSON, IdFactory

__all__ = [
    "JSON",
    "SSE_DONE",
    "IdFactory",
    "OllamaChat",
    "StreamTranslator",
    "created_timestamp",
    "find_model",
    "finish_reason",
    "from_ollama_chat",
    "new_call_id",
    "new_completion_id",
    "sse_event",
    "to_model",
    "to_model_list",
    "to_ollama_chat",
    "to_ollama_messages",
    "to_openai_tool_call",
    "usage",
]
