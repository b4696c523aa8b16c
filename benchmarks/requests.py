"""The one chat request every measurement sends, in its OpenAI and its Ollama form."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

MODEL = "llama3.2"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


def openai_body(*, stream: bool = False) -> dict[str, Any]:
    """What a client sends the gateway."""
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    if stream:
        body["stream"] = True
    return body


def ollama_body(*, stream: bool = False) -> dict[str, Any]:
    """What the gateway sends Ollama for `openai_body(stream=...)`: the direct request."""
    return {"model": MODEL, "messages": MESSAGES, "stream": stream}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_row_count(database: Path) -> int:
    """Rows in the audit log; 0 when the database does not exist yet."""
    if not database.exists():
        return 0
    with sqlite3.connect(database, timeout=30) as conn:
        count: int = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        return count
