"""A stream whose caller goes away mid-way still leaves its audit row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from simpleai.auditing import AuditMiddleware
from simpleai.settings import Settings

Rows = Callable[[], list[dict[str, Any]]]


async def half_a_stream(scope: Any, receive: Any, send: Any) -> None:
    """An app whose stream is cut off after one frame, as a cancelled response task leaves it."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    await send(
        {"type": "http.response.body", "body": b'data: {"partial": true}\n\n', "more_body": True}
    )


def test_a_disconnected_stream_is_audited(gateway: Settings, audit_rows: Rows) -> None:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [],
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps({"stream": True}).encode()}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # Not asyncio.run: it would unset the main thread's loop, which Mangum's handlers reuse.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(AuditMiddleware(half_a_stream)(scope, receive, send))
    finally:
        loop.close()

    (row,) = audit_rows()
    assert row["response_status"] == 200
    assert row["error_type"] == "client_disconnected"
    assert '"partial": true' in row["response_body"]
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
