"""The audit log: one record per request, whatever happened, written before the response leaves.

`AuditRecord` is the row; an `AuditStore` keeps records in a hash chain (chain.py):
`SqliteAuditStore` by default, `DynamoDbAuditStore` (with S3 for large bodies) beyond one volume.
`open_store(settings)` picks the one the settings name. What of a request is kept is decided in
redaction.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from simpleai.audit.chain import Anchor, Verification
from simpleai.audit.records import AuditQuery, AuditRecord
from simpleai.quota import Usage

if TYPE_CHECKING:
    from simpleai.settings import Settings

__all__ = ["AuditQuery", "AuditRecord", "AuditStore", "open_backend", "open_store"]


class AuditStore(Protocol):
    def record(self, record: AuditRecord) -> None:
        """Persist one record durably, extending the hash chain; raises
        `AuditUnavailableError` when it cannot."""

    def check_writable(self) -> None:
        """Raise `AuditUnavailableError` unless a record could be written now."""

    def query(self, query: AuditQuery) -> Iterator[dict[str, Any]]:
        """Records (with `seq`, `prev_hash`, `hash`) matching `query`, in chain order."""

    def anchor(self) -> Anchor | None:
        """Where the chain starts after pruning (None: it starts at GENESIS)."""

    def verify(self) -> Verification:
        """Walk the whole chain and report what does not hold."""

    def usage(self, user_id: str, *, window_start: datetime, day_start: datetime) -> Usage:
        """What `user_id` used since each start, for rate limits and quotas (quota.py)."""

    def prune(self, before: str, *, batch_size: int = 500) -> int:
        """Delete the oldest records written before `before` (ISO timestamp); how many went."""

    def close(self) -> None: ...


def open_store(settings: Settings) -> AuditStore:
    """The audit store the settings name (`AUDIT_BACKEND`)."""
    return open_backend(
        settings.audit_backend,
        database_path=settings.database_path,
        journal_mode=settings.audit_journal_mode,
        synchronous=settings.audit_synchronous,
        table=settings.audit_dynamodb_table,
        bucket=settings.audit_s3_bucket,
        retention_days=settings.audit_retention_days,
    )


def open_backend(
    backend: str,
    *,
    database_path: Path | None = None,
    journal_mode: str | None = "WAL",
    synchronous: str = "FULL",
    table: str | None = None,
    bucket: str | None = None,
    retention_days: int = 0,
) -> AuditStore:
    """A store from its parts, for callers without a full `Settings` (the CLI)."""
    if backend == "dynamodb":
        from simpleai.audit.dynamodb import DynamoDbAuditStore

        if not table:
            raise ValueError("the dynamodb backend needs a table name (AUDIT_DYNAMODB_TABLE)")
        return DynamoDbAuditStore.open(table, bucket=bucket, retention_days=retention_days)
    from simpleai.audit.sqlite import SqliteAuditStore

    if database_path is None:
        raise ValueError("the sqlite backend needs a database path (DATABASE_URL)")
    return SqliteAuditStore.open(database_path, journal_mode=journal_mode, synchronous=synchronous)
