"""The audit record: the plan's fields plus what operators asked for since."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AuditRecord:
    request_path: str
    method: str
    response_status: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=_now)
    request_id: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    client_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    request_body: str | None = None
    response_body: str | None = None
    response_truncated: bool = False
    latency_ms: float | None = None
    upstream_latency_ms: float | None = None
    model_used: str | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    stream: bool = False
    finish_reason: str | None = None
    error_type: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)
