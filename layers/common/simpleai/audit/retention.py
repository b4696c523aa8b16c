"""Retention: delete audit records older than `AUDIT_RETENTION_DAYS`, oldest first, in batches.

Pruning only ever removes the start of the hash chain and leaves an anchor behind, so
verification afterwards starts from the oldest remaining record and still succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simpleai.audit import AuditStore


@dataclass(frozen=True)
class RetentionRun:
    retention_days: int
    cutoff: str | None
    pruned: int


def cutoff_for(retention_days: int, now: datetime | None = None) -> str:
    """The timestamp before which records expire, spelled as records spell timestamps."""
    moment = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prune_expired(
    store: AuditStore,
    retention_days: int,
    *,
    now: datetime | None = None,
    batch_size: int = 500,
) -> RetentionRun:
    """Prune what `retention_days` lets go; 0 keeps everything forever."""
    if retention_days <= 0:
        return RetentionRun(retention_days=retention_days, cutoff=None, pruned=0)
    cutoff = cutoff_for(retention_days, now)
    pruned = store.prune(cutoff, batch_size=batch_size)
    return RetentionRun(retention_days=retention_days, cutoff=cutoff, pruned=pruned)
