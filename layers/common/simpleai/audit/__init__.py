"""The audit log: one record per request, whatever happened, written before the response leaves.

`AuditRecord` is the row; an `AuditStore` keeps records (`SqliteAuditStore` by default).
"""

from __future__ import annotations

from typing import Protocol

from simpleai.audit.records import AuditRecord

__all__ = ["AuditRecord", "AuditStore"]


class AuditStore(Protocol):
    def record(self, record: AuditRecord) -> None:
        """Persist one record durably; raises `AuditUnavailableError` when it cannot."""

    def check_writable(self) -> None:
        """Raise `AuditUnavailableError` unless a record could be written now."""

    def close(self) -> None: ...
