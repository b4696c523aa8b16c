"""5. Audit store: rows per second into one SQLite file from one writer and from 4 processes,
through `SqliteAuditStore`, and a count of what arrived."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from benchmarks.report import Result
from simpleai.audit.records import AuditRecord
from simpleai.audit.sqlite import SqliteAuditStore
from simpleai.errors import AuditUnavailableError

PROCESSES = 4
REQUEST_BODY = (
    '{"model": "llama3.2", "messages": [{"role": "system", "content": "You are terse."}, '
    '{"role": "user", "content": "Say hello."}]}'
)
RESPONSE_BODY = (
    '{"id": "chatcmpl-abc", "object": "chat.completion", "created": 1795000000, "model": '
    '"llama3.2", "choices": [{"index": 0, "message": {"role": "assistant", "content": '
    '"Hello."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, '
    '"completion_tokens": 2, "total_tokens": 14}}'
)


def write_rows(
    path: Path, journal_mode: str, tag: str, count: int, budget_seconds: float
) -> tuple[int, int, float, float]:
    """Write up to `count` rows as the gateway does; (written, failed, start, end) in
    monotonic seconds, which all processes of this machine share."""
    store = SqliteAuditStore.open(path, journal_mode=journal_mode)
    written = failed = 0
    started = time.monotonic()
    deadline = started + budget_seconds
    for index in range(count):
        if time.monotonic() > deadline:
            break
        record = AuditRecord(
            request_path="/v1/chat/completions",
            method="POST",
            response_status=200,
            request_id=f"{tag}-{index}",
            user_id="alice",
            user_email="alice@example.com",
            client_id="simpleai-android",
            client_ip="127.0.0.1",
            user_agent="bench",
            request_body=REQUEST_BODY,
            response_body=RESPONSE_BODY,
            latency_ms=1.0,
            upstream_latency_ms=0.5,
            model_used="llama3.2",
            tokens_prompt=12,
            tokens_completion=2,
            finish_reason="stop",
        )
        try:
            store.record(record)
            written += 1
        except AuditUnavailableError:
            failed += 1
    ended = time.monotonic()
    store.close()
    return written, failed, started, ended


def _worker(
    path: Path,
    journal_mode: str,
    tag: str,
    count: int,
    budget_seconds: float,
    barrier: Barrier,
    results: Any,
) -> None:
    SqliteAuditStore.open(path, journal_mode=journal_mode).close()  # connect before the start
    barrier.wait(timeout=60)
    results.put(write_rows(path, journal_mode, tag, count, budget_seconds))


def _rows_tagged(path: Path, prefix: str) -> tuple[int, int]:
    with sqlite3.connect(path, timeout=30) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM audit_log WHERE request_id LIKE ?",
            (prefix + "%",),
        ).fetchone()
    return int(rows), int(distinct)


def _one_writer(
    path: Path, journal_mode: str, count: int, budget_seconds: float
) -> tuple[float, int, int, int]:
    tag = f"one-{journal_mode}"
    written, failed, started, ended = write_rows(path, journal_mode, tag, count, budget_seconds)
    found, _ = _rows_tagged(path, tag + "-")
    return written / (ended - started), written, failed, written - found


def _many_writers(
    path: Path, journal_mode: str, count: int, budget_seconds: float
) -> tuple[float, int, int, int]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    tag = f"many-{journal_mode}"
    workers = [
        context.Process(
            target=_worker,
            args=(path, journal_mode, f"{tag}-{n}", count, budget_seconds, barrier, results),
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=budget_seconds + 90) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    written = sum(outcome[0] for outcome in outcomes)
    failed = sum(outcome[1] for outcome in outcomes)
    elapsed = max(outcome[3] for outcome in outcomes) - min(outcome[2] for outcome in outcomes)
    found, distinct = _rows_tagged(path, tag + "-")
    if distinct != found:
        raise RuntimeError(f"{found - distinct} audit rows share an id")
    return written / elapsed, written, failed, written - found


def measure(workdir: Path, *, rows: int = 3000, budget_seconds: float = 12.0) -> Result:
    result = Result(
        number=5,
        title="Audit store (SQLite, one writer and 4 processes)",
        method=(
            f"`SqliteAuditStore.record` of a typical chat row (about 0.5 KB), one "
            f"`BEGIN IMMEDIATE` transaction per row, as the gateway writes: up to {rows} rows "
            f"from one writer, then up to {rows} rows from each of {PROCESSES} processes "
            "started together on the same file (rows/s over the span from the first start to "
            f"the last end); a sixth of that in DELETE mode. Each loop stops after "
            f"{budget_seconds:.0f} s ({budget_seconds / 2:.0f} s in DELETE mode). Afterwards "
            "the rows are counted in the file: `lost` is rows acknowledged but not found. WAL "
            "is the default journal mode; DELETE (with `synchronous=FULL`, an fsync per row) is "
            "what a shared network file system such as EFS needs."
        ),
    )
    lost_total = 0
    # DELETE pays an fsync per row: fewer rows and a shorter budget keep the run short.
    for journal_mode, count, budget in (
        ("WAL", rows, budget_seconds),
        ("DELETE", rows // 6, budget_seconds / 2),
    ):
        path = workdir / f"audit-store-{journal_mode.lower()}.db"
        for label, run in (("1 writer", _one_writer), (f"{PROCESSES} processes", _many_writers)):
            rate, written, failed, lost = run(path, journal_mode, count, budget)
            lost_total += lost
            result.add(
                f"{journal_mode}, {label}",
                f"{rate:,.0f} rows/s ({written} rows, {failed} failed, {lost} lost)",
            )
    if lost_total:
        result.notes.append(f"{lost_total} acknowledged rows are missing from the files.")
    return result
