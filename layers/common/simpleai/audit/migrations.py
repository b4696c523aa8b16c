"""The audit schema, as sqlite-utils migrations: the only place it is defined.

Imported only when a database lacks one of them (see `sqlite.MIGRATIONS`), so that a warm
database costs a cold start no sqlite-utils import.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from simpleai.audit.chain import GENESIS, row_hash
from simpleai.audit.sqlite import MIGRATION_SET, PRUNES, TABLE

migrations = Migrations(MIGRATION_SET)


@migrations()
def m001_create_audit_log(db: sqlite_utils.Database) -> None:
    db[TABLE].create(  # type: ignore[union-attr]
        {
            "id": str,
            "timestamp": str,
            "request_id": str,
            "method": str,
            "request_path": str,
            "user_id": str,
            "user_email": str,
            "client_id": str,
            "client_ip": str,
            "user_agent": str,
            "request_body": str,
            "response_status": int,
            "response_body": str,
            "response_truncated": int,
            "latency_ms": float,
            "upstream_latency_ms": float,
            "model_used": str,
            "tokens_prompt": int,
            "tokens_completion": int,
            "stream": int,
            "finish_reason": str,
            "error_type": str,
        },
        pk="id",
        not_null={"timestamp", "method", "request_path", "response_status"},
    )
    db[TABLE].create_index(["timestamp"])  # type: ignore[union-attr]
    db[TABLE].create_index(["user_id", "timestamp"])  # type: ignore[union-attr]


@migrations()
def m002_hash_chain(db: sqlite_utils.Database) -> None:
    """Chain columns, filled in for rows written before the chain existed, in write order."""
    table = db[TABLE]
    table.add_column("seq", int)  # type: ignore[union-attr]
    table.add_column("prev_hash", str)  # type: ignore[union-attr]
    table.add_column("hash", str)  # type: ignore[union-attr]
    previous = GENESIS
    rows = list(db.query(f"SELECT rowid AS _rowid, * FROM {TABLE} ORDER BY rowid"))  # noqa: S608
    for seq, row in enumerate(rows, start=1):
        rowid = row.pop("_rowid")
        row.update(seq=seq, prev_hash=previous)
        previous = row_hash(row)
        db.execute(
            f"UPDATE {TABLE} SET seq = ?, prev_hash = ?, hash = ? WHERE rowid = ?",  # noqa: S608
            [seq, row["prev_hash"], previous, rowid],
        )
    table.create_index(["seq"], unique=True)  # type: ignore[union-attr]
    db[PRUNES].create(  # type: ignore[union-attr]
        {"pruned_at": str, "before": str, "rows": int, "through_seq": int, "through_hash": str},
        not_null={"pruned_at", "rows", "through_seq", "through_hash"},
    )


@migrations()
def m003_seq_as_rowid(db: sqlite_utils.Database) -> None:
    """`seq` becomes the table's rowid (`INTEGER PRIMARY KEY`) and `id` an ordinary column.

    A record then goes into three B-trees rather than five: the table (appended to at its end),
    `timestamp` and `user_id, timestamp`. The index on the random `id` put every insert on a
    random page, which a large log no longer holds in cache, and the separate `seq` index
    duplicated the chain order. A commit writes 3 pages (5-6 when the table grows by one),
    where it wrote 7.
    """
    db[TABLE].transform(pk="seq", not_null={"id"})  # type: ignore[union-attr]
    db.execute("DROP INDEX IF EXISTS idx_audit_log_seq")
