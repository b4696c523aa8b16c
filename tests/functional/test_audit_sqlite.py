"""What only the SQLite backend does: migrate databases written by earlier versions."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from simpleai.audit import AuditQuery, AuditRecord
from simpleai.audit.chain import GENESIS, row_hash
from simpleai.audit.migrations import migrations
from simpleai.audit.sqlite import PRUNES, TABLE, SqliteAuditStore
from simpleai.errors import AuditUnavailableError
from tests.functional.test_audit_store import make_record


def test_rows_written_before_the_chain_are_chained_by_the_migration(tmp_path: Path) -> None:
    # GIVEN a database as the skeleton left it: the first migration only, two rows
    path = tmp_path / "audit.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before="m002_hash_chain")
    for status in (200, 401):
        row = AuditRecord(request_path="/models", method="GET", response_status=status).to_row()
        old[TABLE].insert(row)  # type: ignore[union-attr]
    old.close()

    # WHEN today's store opens it, and writes on
    store = SqliteAuditStore.open(path)
    store.record(AuditRecord(request_path="/models", method="GET", response_status=200))

    # THEN the old rows lead the chain, in the order they were written
    rows = list(store.query(AuditQuery()))
    report = store.verify()
    store.close()
    assert [(row["seq"], row["response_status"]) for row in rows] == [(1, 200), (2, 401), (3, 200)]
    assert rows[0]["prev_hash"] == GENESIS
    assert report.ok, report.problems


def test_seq_becomes_the_rowid_and_a_chained_log_survives_whole(tmp_path: Path) -> None:
    # GIVEN a database as the hash chain's migration left it: a pruned prefix (anchor), then
    # three chained rows whose seq (5, 6, 7) differs from their rowid (1, 2, 3)
    path = tmp_path / "audit.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before="m003_seq_as_rowid")
    old[PRUNES].insert(  # type: ignore[union-attr]
        {
            "pruned_at": "2026-11-01T00:00:00.000Z",
            "before": "2026-11-01T00:00:00.000Z",
            "rows": 4,
            "through_seq": 4,
            "through_hash": "f" * 64,
        }
    )
    previous = "f" * 64
    for seq, status in zip((5, 6, 7), (200, 401, 502), strict=True):
        row = AuditRecord(
            request_path="/v1/chat/completions", method="POST", response_status=status
        ).to_row()
        row.update(seq=seq, prev_hash=previous)
        row["hash"] = previous = row_hash(row)
        old[TABLE].insert(row)  # type: ignore[union-attr]
    before = list(old.query(f"SELECT * FROM {TABLE} ORDER BY seq"))
    old.close()

    # WHEN today's store opens it, and writes on
    store = SqliteAuditStore.open(path)
    store.record(AuditRecord(request_path="/models", method="GET", response_status=200))

    # THEN seq is the rowid, the UUID and seq indexes are gone, the time indexes remain
    table = store.db[TABLE]
    assert table.pks == ["seq"]  # type: ignore[union-attr]
    assert sorted(index.columns for index in table.indexes) == [  # type: ignore[union-attr]
        ["timestamp"],
        ["user_id", "timestamp"],
    ]
    # ... every old row is as it was, and the chain goes on from its last row
    after = list(store.db.query(f"SELECT rowid AS _rowid, * FROM {TABLE} ORDER BY seq"))
    store.close()
    assert [row["_rowid"] for row in after] == [5, 6, 7, 8]
    assert [{k: v for k, v in row.items() if k != "_rowid"} for row in after[:3]] == before
    assert (after[3]["seq"], after[3]["prev_hash"]) == (8, before[-1]["hash"])
    reopened = SqliteAuditStore.open(path)
    report = reopened.verify()
    reopened.close()
    assert report.ok, report.problems


@pytest.mark.parametrize(("mode", "level"), [("FULL", 2), ("NORMAL", 1)])
def test_the_durability_level_is_the_configured_one(tmp_path: Path, mode: str, level: int) -> None:
    store = SqliteAuditStore.open(tmp_path / "audit.db", synchronous=mode)

    (found,) = store.db.execute("PRAGMA synchronous").fetchone()

    assert found == level
    store.close()


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_a_writer_kept_out_past_the_busy_timeout_fails_rather_than_waits_on(
    tmp_path: Path, journal_mode: str
) -> None:
    # The request it records is then refused: no audit row, no request.
    path = tmp_path / "audit.db"
    store = SqliteAuditStore.open(path, journal_mode=journal_mode, busy_timeout_ms=300)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write that does not end

    with pytest.raises(AuditUnavailableError):
        store.record(make_record(1))

    other.execute("ROLLBACK")
    store.record(make_record(2))  # once the lock is free, the next write succeeds
    assert [row["request_body"] for row in store.query(AuditQuery())] == ['{"n": 2}']
    other.close()
    store.close()


def test_a_new_database_is_switched_to_wal_once_another_openers_write_ends(
    tmp_path: Path,
) -> None:
    # Several functions starting at once on a new database: one is migrating it (a write
    # transaction in the default rollback journal) while another opens it in WAL mode. SQLite
    # answers that switch with "database is locked" at once, busy timeout or not.
    path = tmp_path / "audit.db"
    migrating = sqlite3.connect(path, isolation_level=None)
    migrating.execute("BEGIN IMMEDIATE")
    migrating.execute("CREATE TABLE first_migration (x)")
    opened: list[SqliteAuditStore] = []
    failures: list[BaseException] = []

    def open_in_wal_mode() -> None:
        try:
            opened.append(SqliteAuditStore.open(path, journal_mode="WAL"))
        except BaseException as exc:  # reported by the assertions below
            failures.append(exc)

    opener = threading.Thread(target=open_in_wal_mode)
    opener.start()
    opener.join(timeout=0.3)  # waiting for the write to end, not failed
    waited = opener.is_alive()
    migrating.execute("COMMIT")
    opener.join(timeout=30)

    assert failures == []
    assert waited
    (store,) = opened
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.record(make_record(1))
    assert len(list(store.query(AuditQuery()))) == 1
    store.close()
    migrating.close()


def test_an_open_kept_from_switching_to_wal_past_the_busy_timeout_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE t (x)")  # a write that does not end

    with pytest.raises(AuditUnavailableError):
        SqliteAuditStore.open(path, journal_mode="WAL", busy_timeout_ms=300)

    other.execute("ROLLBACK")
    other.close()
