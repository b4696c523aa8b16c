"""The SQLite audit store: one file on a mounted volume, schema through sqlite-utils migrations.

Each process holds one connection per thread (a warm Lambda holds one). Writes are single
`BEGIN IMMEDIATE` transactions, so several processes sharing the file serialise on SQLite's lock
instead of losing rows; the busy timeout makes them wait rather than fail.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from simpleai.audit.records import AuditRecord
from simpleai.errors import AuditUnavailableError

TABLE = "audit_log"

migrations = Migrations("simpleai-audit")


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


_COLUMNS = tuple(AuditRecord.__dataclass_fields__)
# Built from constants only, never from input.
_INSERT = "INSERT INTO {table} ({columns}) VALUES ({marks})".format(  # noqa: S608
    table=TABLE, columns=", ".join(_COLUMNS), marks=", ".join("?" for _ in _COLUMNS)
)

_migrated: set[Path] = set()
_migrate_lock = threading.Lock()


class SqliteAuditStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(
        cls, path: Path, *, journal_mode: str = "WAL", busy_timeout_ms: int = 30_000
    ) -> SqliteAuditStore:
        """Open (creating it and its folder if need be) and migrate the database at `path`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute(f"PRAGMA journal_mode = {journal_mode}")
            conn.execute(
                "PRAGMA synchronous = FULL"
                if journal_mode != "WAL"
                else "PRAGMA synchronous = NORMAL"
            )
            store = cls(conn)
            store.migrate(path.resolve())
        except (OSError, sqlite3.Error) as exc:
            raise AuditUnavailableError(
                f"The audit database cannot be opened: {type(exc).__name__}."
            ) from exc
        return store

    def migrate(self, key: Path | None = None) -> None:
        """Apply pending migrations, once per process and file, under SQLite's write lock."""
        with _migrate_lock:
            if key is not None and key in _migrated:
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                migrations.apply(self.db)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            if key is not None:
                _migrated.add(key)

    def record(self, record: AuditRecord) -> None:
        row = record.to_row()
        values = [row[column] for column in _COLUMNS]
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(_INSERT, values)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditUnavailableError(
                "The audit log cannot be written, so the request was not served."
            ) from exc

    def check_writable(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise AuditUnavailableError("The audit database is not writable.") from exc

    def close(self) -> None:
        self._conn.close()
