"""Ollama stream objects -> `chat.completion.chunk`s and server-sent event frames."""

from __future__ import annotations

import json
from typing import Any

from simpleai.errors import UpstreamError
from simpleai.translate.responses import (
    _text,
    _tool_call_list,
    created_timestamp,
    finish_reason,
    new_call_id,
    to_openai_tool_call,
    usage,
)
from simpleai.translate.types import JSON, IdFactory


class StreamTranslator:
    """Ollama stream objects in, `chat.completion.chunk`s out, for one streamed completion.

    Every chunk shares one `id` and `created` (the first object's `created_at`). The first chunk
    carries the role; content, reasoning and tool calls follow as Ollama produces them; the done
    object yields a chunk with an empty delta and the finish reason, then the usage chunk
    (`choices: []`) when the caller asked for it. It also assembles the whole completion, as
    the non-streaming answer would have been, for the audit log.
    """

    def __init__(
        self,
        *,
        model: str,
        completion_id: str,
        include_usage: bool = False,
        new_call_id: IdFactory = new_call_id,
    ) -> None:
        self.model = model
        self.completion_id = completion_id
        self.include_usage = include_usage
        self._new_call_id = new_call_id
        self.created: int | None = None
        self.done = False
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[JSON] = []
        self._finish_reason: str | None = None
        self._usage: JSON | None = None

    def translate(self, item: Any) -> list[JSON]:
        """The chunks that one Ollama stream object becomes (possibly none)."""
        if self.done:
            raise UpstreamError("Ollama streamed past the end of its answer.")
        if not isinstance(item, dict) or not isinstance(item.get("message"), dict):
            raise UpstreamError("Ollama streamed an object without a message.")
        chunks: list[JSON] = []
        if self.created is None:
            self.created = created_timestamp(item.get("created_at"))
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        message = item["message"]
        thinking = _text(message, "thinking")
        if thinking:
            self._thinking.append(thinking)
            chunks.append(self._chunk({"reasoning_content": thinking}))
        content = _text(message, "content")
        if content:
            self._content.append(content)
            chunks.append(self._chunk({"content": content}))
        for call in _tool_call_list(message):
            translated = to_openai_tool_call(call, self._new_call_id)
            delta = {"index": len(self._tool_calls), **translated}
            self._tool_calls.append(translated)
            chunks.append(self._chunk({"tool_calls": [delta]}))
        if item.get("done") is True:
            self.done = True
            self._finish_reason = finish_reason(
                item.get("done_reason"), has_tool_calls=bool(self._tool_calls)
            )
            self._usage = usage(item)
            chunks.append(self._chunk({}, self._finish_reason))
            if self.include_usage:
                chunks.append({**self._envelope(), "choices": [], "usage": self._usage})
        return chunks

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    @property
    def usage(self) -> JSON | None:
        return self._usage

    def completion(self) -> JSON:
        """Everything streamed so far, assembled as one `chat.completion`."""
        content = "".join(self._content)
        message: JSON = {"role": "assistant", "content": content}
        if self._tool_calls:
            message["content"] = content or None
            message["tool_calls"] = self._tool_calls
        if self._thinking:
            message["reasoning_content"] = "".join(self._thinking)
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created or 0,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self._finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self._usage,
        }

    def _envelope(self) -> JSON:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created or 0,
            "model": self.model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        chunk: JSON = {
            **self._envelope(),
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:  # as OpenAI: every chunk but the last has `usage: null`
            chunk["usage"] = None
        return chunk


SSE_DONE = b"data: [DONE]\n\n"


def sse_event(data: JSON, event: str | None = None) -> bytes:
    """One server-sent event frame (`event: error` for errors, unnamed for chunks)."""
    line = b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return (f"event: {event}\n".encode() if event else b"") + line + b"\n\n"


# Models ---------------------------------------------------------------------------------------
