"""OpenAI Chat Completions <-> Ollama `/api/chat`, as pure functions.

No I/O and no logging here: JSON-shaped values in, JSON-shaped values out, so that every rule is
tested table-driven (tests/unit/test_translate.py). Invalid input raises `InvalidRequestError`
with `param` naming the offending field; a malformed upstream answer raises `UpstreamError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simpleai.errors import InvalidRequestError, UpstreamError

JSON = dict[str, Any]

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


@dataclass(frozen=True)
class OllamaChat:
    """A translated request: what to send upstream and what to tell the caller."""

    request: JSON
    """The `/api/chat` body."""
    model: str
    """The model name the caller asked for (or the default): echoed in every response."""
    stream: bool
    include_usage: bool


def to_ollama_chat(
    body: Any, *, default_model: str, aliases: Mapping[str, str] | None = None
) -> OllamaChat:
    """Translate an OpenAI chat completion request body into an Ollama `/api/chat` request."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        model = default_model
    elif not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' must be a non-empty string.", param="model")
    upstream_model = (aliases or {}).get(model, model)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be a boolean.", param="stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty array.", param="messages")
    request: JSON = {
        "model": upstream_model,
        "messages": [_to_ollama_message(message, index) for index, message in enumerate(messages)],
        "stream": stream,
    }
    return OllamaChat(request=request, model=model, stream=stream, include_usage=False)


def _to_ollama_message(message: Any, index: int) -> JSON:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise InvalidRequestError(f"{param} must be an object.", param=param)
    role = ROLES.get(message.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidRequestError(
            f"{param}.role must be one of {', '.join(ROLES)}.", param=f"{param}.role"
        )
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidRequestError(f"{param}.content must be a string.", param=f"{param}.content")
    return {"role": role, "content": content}


def from_ollama_chat(answer: Any, *, model: str, completion_id: str) -> JSON:
    """Translate a non-streaming Ollama `/api/chat` answer into an OpenAI `chat.completion`."""
    if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
        raise UpstreamError("Ollama returned an answer without a message.")
    message = answer["message"]
    content = message.get("content")
    if not isinstance(content, str):
        raise UpstreamError("Ollama returned a message without text content.")
    prompt_tokens = _count(answer.get("prompt_eval_count"))
    completion_tokens = _count(answer.get("eval_count"))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created_timestamp(answer.get("created_at")),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason(answer.get("done_reason")),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def finish_reason(done_reason: Any, *, has_tool_calls: bool = False) -> str:
    """Map Ollama's `done_reason` onto OpenAI's closed set of finish reasons."""
    if has_tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def created_timestamp(created_at: Any) -> int:
    """Ollama's RFC 3339 `created_at` (nanosecond precision) -> Unix seconds; 0 when absent."""
    if not isinstance(created_at, str) or not created_at:
        return 0
    text = created_at.replace("Z", "+00:00")
    date, dot, rest = text.partition(".")
    if dot:  # Python's parser takes at most 6 fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = date + rest[digits:]
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def to_model_list(tags: Any) -> JSON:
    """Ollama `/api/tags` -> an OpenAI model list (an empty list is `[]`, never null)."""
    if not isinstance(tags, dict):
        raise UpstreamError("Ollama returned a malformed model list.")
    models = tags.get("models") or []
    if not isinstance(models, list):
        raise UpstreamError("Ollama returned a malformed model list.")
    return {"object": "list", "data": [to_model(entry) for entry in models]}


def to_model(entry: Any) -> JSON:
    if not isinstance(entry, dict) or not isinstance(entry.get("name") or entry.get("model"), str):
        raise UpstreamError("Ollama returned a model without a name.")
    return {
        "id": entry.get("name") or entry.get("model"),
        "object": "model",
        "created": created_timestamp(entry.get("modified_at")),
        "owned_by": "ollama",
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
