"""Ollama `/api/chat` answers -> OpenAI `chat.completion`s, and the ids they carry."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from simpleai.errors import UpstreamError
from simpleai.translate.types import JSON, IdFactory


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18)


def from_ollama_chat(
    answer: Any, *, model: str, completion_id: str, new_call_id: IdFactory = new_call_id
) -> JSON:
    """Translate a non-streaming Ollama `/api/chat` answer into an OpenAI `chat.completion`."""
    if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
        raise UpstreamError("Ollama returned an answer without a message.")
    message = answer["message"]
    content = _text(message, "content")
    tool_calls = [to_openai_tool_call(call, new_call_id) for call in _tool_call_list(message)]
    reply: JSON = {"role": "assistant", "content": content}
    if tool_calls:
        reply["content"] = content or None
        reply["tool_calls"] = tool_calls
    thinking = _text(message, "thinking")
    if thinking:
        reply["reasoning_content"] = thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created_timestamp(answer.get("created_at")),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": finish_reason(
                    answer.get("done_reason"), has_tool_calls=bool(tool_calls)
                ),
                "logprobs": None,
            }
        ],
        "usage": usage(answer),
    }


def to_openai_tool_call(call: Any, new_call_id: IdFactory) -> JSON:
    """Ollama `{function: {name, arguments: {...}}}` -> OpenAI, with a unique `call_...` id."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UpstreamError("Ollama returned a tool call without a function name.")
    arguments = function.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    call_id = call.get("id")
    return {
        "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def finish_reason(done_reason: Any, *, has_tool_calls: bool = False) -> str:
    """Map Ollama's `done_reason` onto OpenAI's closed set (`load`, `unload`, none -> stop)."""
    if has_tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def usage(answer: JSON) -> JSON:
    prompt_tokens = _count(answer.get("prompt_eval_count"))
    completion_tokens = _count(answer.get("eval_count"))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


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


def _text(message: JSON, key: str) -> str:
    value = message.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UpstreamError(f"Ollama returned a message whose {key} is not text.")
    return value


def _tool_call_list(message: JSON) -> list[Any]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise UpstreamError("Ollama returned tool_calls that are not a list.")
    return calls


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
