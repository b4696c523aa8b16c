"""Several real processes writing one SQLite audit file at once lose nothing and keep one chain."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from simpleai.audit import AuditRecord
from simpleai.audit.sqlite import SqliteAuditStore

PROCESSES = 8
WRITES_EACH = 250


def write_records(path: str, journal_mode: str, writes: int, worker: int, start: Any) -> None:
    """One writer process: released with the others, it opens the store as a cold function
    would (the first of them creating and migrating it) and writes."""
    start.wait(timeout=60)
    store = SqliteAuditStore.open(Path(path), journal_mode=journal_mode)
    for number in range(writes):
        store.record(
            AuditRecord(
                request_path="/v1/chat/completions",
                method="POST",
                response_status=200,
                user_id=f"worker-{worker}",
                request_body=f'{{"n": {number}}}',
            )
        )
    store.close()


@pytest.mark.parametrize(
    ("journal_mode", "writes_each"),
    # DELETE is what EFS needs; fewer writes, as each commit there syncs the whole journal
    [("WAL", WRITES_EACH), ("DELETE", 50)],
)
def test_eight_processes_writing_at_once_lose_nothing_and_keep_a_valid_chain(
    tmp_path: Path, journal_mode: str, writes_each: int
) -> None:
    # GIVEN no database yet and 8 processes released together (spawned, not forked: each
    # starts cold and opens it, migrations included, like 8 Lambda execution environments
    # started by one burst; opening at once is what once failed a switch to WAL)
    path = tmp_path / "audit.db"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [
        context.Process(
            target=write_records, args=(str(path), journal_mode, writes_each, worker, start)
        )
        for worker in range(PROCESSES)
    ]

    # WHEN they all write at once
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)

    # THEN every write is there (8 x 250 = 2,000 with WAL), numbered without gaps
    assert [process.exitcode for process in workers] == [0] * PROCESSES
    with sqlite3.connect(path) as conn:
        per_worker = dict(conn.execute("SELECT user_id, count(*) FROM audit_log GROUP BY user_id"))
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM audit_log ORDER BY seq")]
    assert per_worker == {f"worker-{worker}": writes_each for worker in range(PROCESSES)}
    assert seqs == list(range(1, PROCESSES * writes_each + 1))
    store = SqliteAuditStore.open(path)
    report = store.verify()
    store.close()
    assert report.ok, report.problems[:5]
    assert report.rows == PROCESSES * writes_each
