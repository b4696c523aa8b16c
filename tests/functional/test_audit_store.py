"""One suite, both backends: SQLite on a file, DynamoDB + S3 in moto's in-process AWS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from simpleai.audit import AuditQuery, AuditRecord
from simpleai.audit.chain import GENESIS
from tests.support.audit_backends import Backend, SqliteBackend, dynamodb_backend


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        sqlite = SqliteBackend(tmp_path / "audit.db")
        yield sqlite
        sqlite.store.close()
    else:
        with dynamodb_backend() as dynamodb:
            yield dynamodb


def make_record(number: int = 0, **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "request_path": "/v1/chat/completions",
        "method": "POST",
        "response_status": 200,
        "timestamp": f"2026-11-20T10:00:{number % 60:02d}.000Z",
        "user_id": "alice",
        "user_email": "alice@example.com",
        "request_body": f'{{"n": {number}}}',
        "response_body": "{}",
        "latency_ms": 12.5,
        "model_used": "llama3.2",
        "tokens_prompt": 3,
        "tokens_completion": 4,
    }
    values.update(fields)
    return AuditRecord(**values)


def everything(backend: Backend) -> list[dict[str, Any]]:
    return list(backend.store.query(AuditQuery()))


def test_a_record_reads_back_as_written(backend: Backend) -> None:
    record = make_record(
        stream=True, response_truncated=True, upstream_latency_ms=9.25, finish_reason="stop"
    )

    backend.store.record(record)

    (row,) = everything(backend)
    assert {key: row[key] for key in record.to_row()} == record.to_row()
    assert (row["seq"], row["prev_hash"]) == (1, GENESIS)


def test_rows_form_a_chain_that_verifies(backend: Backend) -> None:
    for number in range(5):
        backend.store.record(make_record(number))

    rows = everything(backend)
    report = backend.store.verify()

    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["prev_hash"] == prev["hash"] for prev, row in pairwise(rows))
    assert report.ok, report.problems
    assert (report.rows, report.head_hash) == (5, rows[-1]["hash"])


def test_query_filters_by_user_model_status_and_time(backend: Backend) -> None:
    backend.store.record(make_record(1))
    backend.store.record(make_record(2, user_id="bob", user_email="bob@example.com"))
    backend.store.record(make_record(3, model_used="llava", response_status=502))
    backend.store.record(make_record(4, response_status=401, timestamp="2026-11-21T08:00:00.000Z"))

    def numbers(**query: Any) -> list[str]:
        return [row["request_body"] for row in backend.store.query(AuditQuery(**query))]

    assert numbers(user="bob") == ['{"n": 2}']
    assert numbers(user="alice@example.com") == ['{"n": 1}', '{"n": 3}', '{"n": 4}']
    assert numbers(model="llava") == ['{"n": 3}']
    assert numbers(status="5xx") == ['{"n": 3}']
    assert numbers(status="401") == ['{"n": 4}']
    assert numbers(since="2026-11-21") == ['{"n": 4}']
    assert numbers(until="2026-11-20T10:00:02.000Z") == ['{"n": 1}']
    assert numbers(limit=2, newest_first=True) == ['{"n": 4}', '{"n": 3}']


def test_large_bodies_survive_whole(backend: Backend) -> None:
    large = "x" * 20_000

    backend.store.record(make_record(request_body=large, response_body=large))

    (row,) = everything(backend)
    assert row["request_body"] == row["response_body"] == large
    assert backend.store.verify().ok


def test_verify_catches_an_edited_row(backend: Backend) -> None:
    for number in range(4):
        backend.store.record(make_record(number))

    backend.edit(2, tokens_completion=1)

    report = backend.store.verify()
    assert not report.ok
    assert any(problem.startswith("seq 2: hash") for problem in report.problems)


def test_verify_catches_a_deleted_row(backend: Backend) -> None:
    for number in range(4):
        backend.store.record(make_record(number))

    backend.delete(2)

    report = backend.store.verify()
    assert not report.ok
    assert any(problem.startswith("seq 3:") for problem in report.problems)


def test_verify_catches_an_inserted_row(backend: Backend) -> None:
    for number in range(4):
        backend.store.record(make_record(number))

    backend.insert_forged_after(2, user_id="mallory", request_body='{"n": "forged"}')

    report = backend.store.verify()
    assert not report.ok
    # The forged row links to row 2 correctly; the row after it no longer links to anything.
    assert any(problem.startswith("seq 4: prev_hash") for problem in report.problems)


def test_verify_catches_a_deleted_first_row(backend: Backend) -> None:
    for number in range(3):
        backend.store.record(make_record(number))

    backend.delete(1)

    if backend.name == "dynamodb":
        pytest.skip("TTL deletes leave no anchor: DynamoDB trusts its oldest row (docs/audit.md)")
    assert not backend.store.verify().ok


def test_prune_removes_old_rows_and_the_chain_still_verifies(backend: Backend) -> None:
    for day in range(1, 8):
        backend.store.record(make_record(timestamp=f"2026-11-{day:02d}T12:00:00.000Z"))

    pruned = backend.store.prune("2026-11-05T00:00:00.000Z", batch_size=2)

    rows = everything(backend)
    assert pruned == 4
    assert [row["timestamp"][:10] for row in rows] == ["2026-11-05", "2026-11-06", "2026-11-07"]
    report = backend.store.verify()
    assert report.ok, report.problems
    assert report.first_seq == 5
    assert "seq 4" in report.anchored_by


def test_writes_after_pruning_everything_continue_the_chain(backend: Backend) -> None:
    backend.store.record(make_record(1))
    backend.store.record(make_record(2))
    assert backend.store.prune("2030-01-01T00:00:00.000Z") == 2

    backend.store.record(make_record(3))

    (row,) = everything(backend)
    assert row["seq"] == 3
    assert backend.store.verify().ok


def test_concurrent_writers_in_threads_keep_one_chain(backend: Backend) -> None:
    if backend.name == "dynamodb":
        pytest.skip("moto's in-process DynamoDB is not thread-safe; see test_audit_dynamodb.py")

    def write(worker: int) -> None:
        for number in range(25):
            backend.store.record(make_record(number, user_id=f"worker-{worker}"))

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    rows = everything(backend)
    assert [row["seq"] for row in rows] == list(range(1, 101))
    assert backend.store.verify().ok


def test_check_writable_passes_on_a_working_store(backend: Backend) -> None:
    backend.store.check_writable()


def test_usage_counts_a_users_requests_in_the_window_and_tokens_of_the_day(
    backend: Backend,
) -> None:
    # GIVEN alice's rows yesterday, early today, in the last minute and a rate refusal,
    # and bob's row in the last minute
    for stamp, fields in [
        ("2026-11-19T23:59:59.000Z", {}),
        ("2026-11-20T08:00:00.000Z", {}),
        ("2026-11-20T09:59:30.000Z", {}),
        ("2026-11-20T09:59:45.000Z", {}),
        (
            "2026-11-20T09:59:50.000Z",
            {"error_type": "rate_limit_error", "tokens_prompt": None, "tokens_completion": None},
        ),
        ("2026-11-20T09:59:40.000Z", {"user_id": "bob"}),
    ]:
        backend.store.record(make_record(timestamp=stamp, **fields))

    # WHEN the usage is read at 10:00:00
    usage = backend.store.usage(
        "alice",
        window_start=datetime(2026, 11, 20, 9, 59, 0, tzinfo=UTC),
        day_start=datetime(2026, 11, 20, tzinfo=UTC),
    )

    # THEN two requests count in the window, the oldest at 09:59:30, and three rows' tokens
    assert usage.requests_in_window == 2
    assert usage.oldest_in_window == datetime(2026, 11, 20, 9, 59, 30, tzinfo=UTC)
    assert usage.tokens_today == 3 * 7


def test_usage_of_an_unknown_user_is_zero(backend: Backend) -> None:
    usage = backend.store.usage(
        "nobody",
        window_start=datetime(2026, 11, 20, tzinfo=UTC),
        day_start=datetime(2026, 11, 20, tzinfo=UTC),
    )

    assert (usage.requests_in_window, usage.oldest_in_window, usage.tokens_today) == (0, None, 0)
