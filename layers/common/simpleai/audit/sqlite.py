"""The SQLite audit store: one file on a mounted volume, schema through sqlite-utils migrations.

Each process holds one connection per thread (a warm Lambda holds one). Writes are single
`BEGIN IMMEDIATE` transactions, so several processes sharing the file serialise on SQLite's lock
instead of losing rows; the busy timeout makes them wait rather than fail. The previous row's hash
is read inside that same transaction, so concurrent writers extend one hash chain (chain.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpleai.audit.chain import GENESIS, Anchor, Verification, row_hash, verify_chain
from simpleai.audit.records import AuditQuery, AuditRecord, iso_timestamp
from simpleai.errors import AuditUnavailableError
from simpleai.quota import Usage

if TYPE_CHECKING:
    import sqlite_utils

TABLE = "audit_log"
PRUNES = "audit_prunes"

MIGRATIONS = ("m001_create_audit_log", "m002_hash_chain", "m003_seq_as_rowid")
"""The names in migrations.py, in order: a cold start on a database that has them all needs no
sqlite-utils import (tests/unit/test_audit_migration_names.py keeps the two in step)."""
MIGRATION_SET = "simpleai-audit"


_COLUMNS = (*AuditRecord.__dataclass_fields__, "seq", "prev_hash", "hash")
# Statements are built from constants only, never from input.
_INSERT = "INSERT INTO {table} ({columns}) VALUES ({marks})".format(  # noqa: S608
    table=TABLE, columns=", ".join(_COLUMNS), marks=", ".join("?" for _ in _COLUMNS)
)
_BOOLEAN_COLUMNS = ("stream", "response_truncated")

_migrated: set[Path] = set()
_migrate_lock = threading.Lock()


class SqliteAuditStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # One connection has one transaction at a time: threads sharing a store take turns.
        self._write_lock = threading.Lock()

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, imported on first use (migrations, queries)."""
        import sqlite_utils

        return sqlite_utils.Database(self._conn)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        journal_mode: str | None = "WAL",
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
    ) -> SqliteAuditStore:
        """Open (creating it and its folder if need be) and migrate the database at `path`.

        `journal_mode` None leaves the file's mode as it is: WAL is a property of the file, and
        a reader (the CLI) must not switch a database on EFS to WAL behind its writers' backs.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if journal_mode is not None:
                _set_journal_mode(conn, journal_mode, busy_timeout_ms / 1000)
            # FULL by default in every mode: with WAL, NORMAL lets a power cut or OS crash take
            # back records whose responses have already left (an application crash loses
            # nothing). It saves the fsync, about 0.5 ms a write here (AUDIT_SYNCHRONOUS).
            if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
                raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous}")
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
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
            if not set(MIGRATIONS) <= self._applied_migrations():
                from simpleai.audit.migrations import migrations

                with self._write_transaction():
                    migrations.apply(self.db)
            if key is not None:
                _migrated.add(key)

    def _applied_migrations(self) -> set[str]:
        try:
            rows = self._conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET]
            ).fetchall()
        except sqlite3.OperationalError:  # no migrations table yet: a new database
            return set()
        return {name for (name,) in rows}

    def record(self, record: AuditRecord) -> None:
        row = record.to_row()
        try:
            with self._write_transaction():
                # Read the chain's head under the write lock: no other writer can slip in
                # between this read and the insert.
                head = self._conn.execute(
                    f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                ).fetchone()
                last = head or self._anchor_row() or (0, GENESIS)
                row.update(seq=last[0] + 1, prev_hash=last[1])
                row["hash"] = row_hash(row)
                self._conn.execute(_INSERT, [row[column] for column in _COLUMNS])
        except sqlite3.Error as exc:
            raise AuditUnavailableError(
                "The audit log cannot be written, so the request was not served."
            ) from exc

    def check_writable(self) -> None:
        try:
            with self._write_lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise AuditUnavailableError("The audit database is not writable.") from exc

    def query(self, query: AuditQuery) -> Iterator[dict[str, Any]]:
        """Records matching `query`, in chain order (or newest first)."""
        where, params = _where(query)
        # Only constants and placeholders go into the statement; values travel as parameters.
        order = "DESC" if query.newest_first else "ASC"
        sql = f"SELECT * FROM {TABLE}{where} ORDER BY seq {order} LIMIT ?"  # noqa: S608
        params.append(-1 if query.limit is None else int(query.limit))
        for row in self.db.query(sql, params):
            yield _restored(row)

    def usage(self, user_id: str, *, window_start: datetime, day_start: datetime) -> Usage:
        """Two look-ups on the (user_id, timestamp) index; refusals for rate do not count."""
        count, oldest = self._conn.execute(
            f"SELECT COUNT(*), MIN(timestamp) FROM {TABLE} WHERE user_id = ? AND timestamp >= ?"  # noqa: S608
            " AND error_type IS NOT 'rate_limit_error'",
            [user_id, iso_timestamp(window_start)],
        ).fetchone()
        (tokens,) = self._conn.execute(
            f"SELECT TOTAL(tokens_prompt) + TOTAL(tokens_completion) FROM {TABLE}"  # noqa: S608
            " WHERE user_id = ? AND timestamp >= ?",
            [user_id, iso_timestamp(day_start)],
        ).fetchone()
        return Usage(
            requests_in_window=int(count),
            oldest_in_window=_parse_timestamp(oldest) if oldest else None,
            tokens_today=int(tokens),
        )

    def anchor(self) -> Anchor | None:
        found = self._anchor_row()
        return Anchor(seq=found[0], hash=found[1]) if found else None

    def verify(self) -> Verification:
        rows = self.db.query(f"SELECT * FROM {TABLE} ORDER BY seq")  # noqa: S608
        return verify_chain(rows, self.anchor())

    def prune(self, before: str, *, batch_size: int = 500) -> int:
        """Delete the chain's oldest rows written before `before`, one batch per transaction.

        Only a prefix of the chain goes (timestamps are taken before the write lock, so they
        are nearly but not strictly in chain order); each batch leaves an anchor in
        `audit_prunes` for verification to start from.
        """
        removed = 0
        while True:
            with self._write_transaction():
                batch = self._conn.execute(
                    f"SELECT seq, hash, timestamp FROM {TABLE} ORDER BY seq LIMIT ?",  # noqa: S608
                    [batch_size],
                ).fetchall()
                expired = []
                for row in batch:
                    if row[2] >= before:
                        break
                    expired.append(row)
                if expired:
                    last_seq, last_hash = expired[-1][0], expired[-1][1]
                    self._conn.execute(f"DELETE FROM {TABLE} WHERE seq <= ?", [last_seq])  # noqa: S608
                    self.db[PRUNES].insert(  # type: ignore[union-attr]
                        {
                            "pruned_at": _utc_now(),
                            "before": before,
                            "rows": len(expired),
                            "through_seq": last_seq,
                            "through_hash": last_hash,
                        }
                    )
            removed += len(expired)
            if len(expired) < batch_size:
                return removed

    def close(self) -> None:
        self._conn.close()

    def _anchor_row(self) -> tuple[int, str] | None:
        found = self._conn.execute(
            f"SELECT through_seq, through_hash FROM {PRUNES} ORDER BY through_seq DESC LIMIT 1"  # noqa: S608
        ).fetchone()
        return (int(found[0]), str(found[1])) if found else None

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error (the connection is
        autocommit); IMMEDIATE takes the write lock up front, so the reads inside see the
        state the write will extend."""
        with self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")


JOURNAL_MODE_RETRY_SECONDS = 0.005


def _set_journal_mode(conn: sqlite3.Connection, mode: str, busy_timeout: float) -> None:
    """`PRAGMA journal_mode = mode`, unless the file has it already, waiting out other writers.

    SQLite answers a switch that another connection's write transaction blocks with "database
    is locked" at once, without waiting out the busy timeout: so when several functions start
    at once on a new database (one migrating it, another switching it to WAL), the switch is
    tried again until the busy timeout. Before, about one open in thirty failed that way when
    eight started together, and the requests they were serving were refused."""
    deadline = time.monotonic() + busy_timeout
    while True:
        (current,) = conn.execute("PRAGMA journal_mode").fetchone()
        if str(current).lower() == mode.lower():
            return
        try:
            conn.execute(f"PRAGMA journal_mode = {mode}")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(JOURNAL_MODE_RETRY_SECONDS)


def _where(query: AuditQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.user:
        clauses.append("(user_id = ? OR user_email = ?)")
        params += [query.user, query.user]
    if query.model:
        clauses.append("model_used = ?")
        params.append(query.model)
    codes = query.status_range()
    if codes:
        clauses.append("response_status BETWEEN ? AND ?")
        params += list(codes)
    if query.since:
        clauses.append("timestamp >= ?")
        params.append(query.since)
    if query.until:
        clauses.append("timestamp < ?")
        params.append(query.until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _restored(row: dict[str, Any]) -> dict[str, Any]:
    for column in _BOOLEAN_COLUMNS:
        row[column] = bool(row[column])
    return row


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
