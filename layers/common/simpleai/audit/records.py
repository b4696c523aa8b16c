"""The audit record: the plan's fields plus what operators asked for since."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso_timestamp(moment: datetime) -> str:
    """The audit log's timestamp form (UTC, milliseconds, `Z`): it sorts as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> str:
    return iso_timestamp(datetime.now(UTC))


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
        # Fields are flat values: no deep copy needed (dataclasses.asdict costs 10x this).
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(AuditRecord.__dataclass_fields__)


@dataclass(frozen=True)
class AuditQuery:
    """Which records to read back. Timestamps are ISO 8601 UTC strings as records carry them;
    `since` is inclusive, `until` exclusive. `status` is a code (`"502"`) or a class (`"5xx"`)."""

    user: str | None = None
    """Matches `user_id` or `user_email`."""
    model: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    newest_first: bool = False

    def status_range(self) -> tuple[int, int] | None:
        """The inclusive range of codes `status` stands for."""
        if not self.status:
            return None
        text = self.status.strip().lower()
        if len(text) == 3 and text[0].isdigit() and text[1:] == "xx":
            low = int(text[0]) * 100
            return low, low + 99
        code = int(text)
        return code, code

    def matches(self, row: dict[str, Any]) -> bool:
        """The same filter as a backend's native query, for backends that filter in Python."""
        if self.user and self.user not in (row.get("user_id"), row.get("user_email")):
            return False
        if self.model and row.get("model_used") != self.model:
            return False
        codes = self.status_range()
        if codes and not codes[0] <= int(row["response_status"]) <= codes[1]:
            return False
        if self.since and row["timestamp"] < self.since:
            return False
        return not (self.until and row["timestamp"] >= self.until)
