"""Streamed chat completions through the chat function's real Lambda handler (Mangum).

Mangum cannot stream: the handler returns the whole event stream as one body, which is what a
client behind API Gateway receives (docs/compatibility.md says what real streaming needs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fake_ollama import FakeOllama, Fault, Reply

Invoke = Callable[..., dict[str, Any]]
Rows = Callable[[], list[dict[str, Any]]]


def frames(body: str) -> list[str]:
    """The event stream's frames, in order."""
    assert body.endswith("\n\n")
    return body.removesuffix("\n\n").split("\n\n")


def test_a_stream_arrives_whole_through_mangum(
    invoke: Invoke, fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    fake_ollama.queue(Reply(content="Hello there.", chunks=2))

    result = invoke("chat", "chat-stream")

    assert result["statusCode"] == 200
    assert result["headers"]["content-type"].startswith("text/event-stream")
    assert result["headers"]["cache-control"].startswith("no-store")
    sent = frames(result["body"])
    assert sent[-1] == "data: [DONE]"
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in sent[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:4]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello "},
        {"content": "there."},
        {},
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 19
    (row,) = audit_rows()
    assert row["request_id"] == "evt-chat-stream"
    assert json.loads(row["response_body"])["choices"][0]["message"]["content"] == "Hello there."


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"error": "model requires more system memory"}], "more system memory"),
        ([{"model": "llama3.2", "done": False}], "without a message"),
        ([], "before sending anything"),
    ],
    ids=["error-line-first", "malformed-first-line", "empty-stream"],
)
def test_a_stream_failing_before_its_first_frame_is_a_plain_502(
    invoke: Invoke, fake_ollama: FakeOllama, audit_rows: Rows, lines: list[Any], message: str
) -> None:
    fake_ollama.queue(Fault(lines=lines))

    result = invoke("chat", "chat-stream")

    assert result["statusCode"] == 502
    assert result["headers"]["content-type"] == "application/json"
    error = json.loads(result["body"])["error"]
    assert error["type"] == "upstream_error" and message in error["message"]
    (row,) = audit_rows()
    assert (row["response_status"], row["stream"]) == (502, 1)


def test_a_stream_failing_midway_ends_with_an_error_event_not_done(
    invoke: Invoke, fake_ollama: FakeOllama
) -> None:
    fake_ollama.queue(Fault(mid_stream=True, error="llama runner process has terminated"))

    result = invoke("chat", "chat-stream")

    assert result["statusCode"] == 200
    last = frames(result["body"])[-1]
    assert last.startswith("event: error\ndata: ")
    error = json.loads(last.split("data: ", 1)[1])["error"]
    assert error["type"] == "upstream_error"
    assert "llama runner process has terminated" in error["message"]
    assert "[DONE]" not in result["body"]
