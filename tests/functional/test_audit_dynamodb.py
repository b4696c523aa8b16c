"""What only the DynamoDB backend does: optimistic chain appends, S3 bodies, TTL (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simpleai import runtime
from simpleai.audit import AuditQuery
from tests.functional.test_audit_store import make_record
from tests.support.audit_backends import BUCKET, TABLE_NAME, DynamoDbBackend, dynamodb_backend


@pytest.fixture
def backend() -> Iterator[DynamoDbBackend]:
    with dynamodb_backend() as dynamodb:
        yield dynamodb


def test_a_dynamodb_writer_that_loses_the_race_links_to_the_winner(
    backend: DynamoDbBackend,
) -> None:
    store: Any = backend.store
    read_head = store._head
    raced = []

    def head_then_a_rival_writes() -> Any:
        head = read_head()
        if not raced:  # between this writer's read and its write, another one appends
            raced.append(True)
            store._head = read_head
            store.record(make_record(1, user_id="rival"))
            store._head = head_then_a_rival_writes
        return head

    store._head = head_then_a_rival_writes

    store.record(make_record(2, user_id="loser"))

    rows = list(backend.store.query(AuditQuery()))
    assert [(row["seq"], row["user_id"]) for row in rows] == [(1, "rival"), (2, "loser")]
    assert store.verify().ok


def test_dynamodb_keeps_large_bodies_in_s3_and_prunes_them_too(backend: DynamoDbBackend) -> None:
    dynamodb = backend
    backend.store.record(make_record(1, response_body="y" * 20_000))
    backend.store.record(make_record(2, timestamp="2026-12-01T00:00:00.000Z"))

    (key,) = dynamodb.s3_keys()
    items = {int(item["seq"]): item for item in dynamodb._items()}
    assert items[1]["bodies_s3_key"] == key
    assert "response_body" not in items[1]
    assert "bodies_s3_key" not in items[2]

    assert backend.store.prune("2026-11-30T00:00:00.000Z") == 1
    assert dynamodb.s3_keys() == []


def test_dynamodb_items_carry_a_ttl_when_retention_is_on(backend: DynamoDbBackend) -> None:
    dynamodb = backend
    dynamodb.store._retention_days = 30

    backend.store.record(make_record(timestamp="2026-11-01T00:00:00.000Z"))

    (item,) = dynamodb._items()
    assert int(item["expires_at"]) == 1_796_083_200  # 2026-12-01T00:00:00Z, 30 days on


def test_the_runtime_writes_to_dynamodb_when_the_settings_say_so(
    invoke: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with dynamodb_backend() as backend:
        runtime.configure(
            make_settings(
                audit_backend="dynamodb", audit_dynamodb_table=TABLE_NAME, audit_s3_bucket=BUCKET
            )
        )

        result = invoke("chat", "chat", user="bob")
        deep = invoke("health", "health-deep")

        (row,) = backend.store.query(AuditQuery(user="bob"))
    assert result["statusCode"] == 200
    assert (row["response_status"], row["model_used"], row["seq"]) == (200, "llama3.2", 1)
    assert deep["statusCode"] == 200
