"""What only the SQLite backend does: migrate a database written before the hash chain."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from simpleai.audit import AuditQuery, AuditRecord
from simpleai.audit.chain import GENESIS
from simpleai.audit.migrations import migrations
from simpleai.audit.sqlite import TABLE, SqliteAuditStore


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


@pytest.mark.parametrize(("mode", "level"), [("FULL", 2), ("NORMAL", 1)])
def test_the_durability_level_is_the_configured_one(tmp_path: Path, mode: str, level: int) -> None:
    store = SqliteAuditStore.open(tmp_path / "audit.db", synchronous=mode)

    (found,) = store.db.execute("PRAGMA synchronous").fetchone()

    assert found == level
    store.close()
