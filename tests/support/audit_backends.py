"""The audit backends the shared store suite runs against, each with ways to tamper with it.

`sqlite`: a real database file. `dynamodb`: a DynamoDB table and an S3 bucket in moto's in-process
AWS (`mock_aws`), with a low inline-body limit so that large bodies really go to S3.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from simpleai.audit import AuditStore
from simpleai.audit.chain import row_hash
from simpleai.audit.dynamodb import HEAD_ID, USER_INDEX, DynamoDbAuditStore
from simpleai.audit.sqlite import TABLE, SqliteAuditStore

BUCKET = "simpleai-audit-bodies-test"
TABLE_NAME = "simpleai-audit-test"
INLINE_BODY_LIMIT = 4096


class Backend(Protocol):
    name: str
    store: AuditStore

    def edit(self, seq: int, **changes: Any) -> None: ...
    def delete(self, seq: int) -> None: ...
    def insert_forged_after(self, seq: int, **fields: Any) -> None:
        """A well-formed row hashed onto row `seq`, the rows after it shifted up by one."""


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = SqliteAuditStore.open(path)

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def edit(self, seq: int, **changes: Any) -> None:
        with self._conn() as conn:
            for column, value in changes.items():
                conn.execute(f"UPDATE {TABLE} SET {column} = ? WHERE seq = ?", [value, seq])

    def delete(self, seq: int) -> None:
        with self._conn() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE seq = ?", [seq])

    def insert_forged_after(self, seq: int, **fields: Any) -> None:
        with self._conn() as conn:
            before = dict(conn.execute(f"SELECT * FROM {TABLE} WHERE seq = ?", [seq]).fetchone())
            # Two steps, because the unique index on seq forbids shifting in place.
            conn.execute(f"UPDATE {TABLE} SET seq = -seq WHERE seq > ?", [seq])
            conn.execute(f"UPDATE {TABLE} SET seq = 1 - seq WHERE seq < 0")
            forged = _forged(before, **fields)
            columns = ", ".join(forged)
            marks = ", ".join("?" for _ in forged)
            conn.execute(f"INSERT INTO {TABLE} ({columns}) VALUES ({marks})", list(forged.values()))


class DynamoDbBackend:
    name = "dynamodb"

    def __init__(self, store: DynamoDbAuditStore, table: Any, s3: Any) -> None:
        self.store = store
        self.table = table
        self.s3 = s3

    def _item(self, seq: int) -> dict[str, Any]:
        items = [item for item in self._items() if int(item["seq"]) == seq]
        return items[0]

    def _items(self) -> list[dict[str, Any]]:
        items = self.table.scan(ConsistentRead=True)["Items"]
        return [item for item in items if item["id"] != HEAD_ID]

    def edit(self, seq: int, **changes: Any) -> None:
        item = self._item(seq)
        item.update(changes)
        self.table.put_item(Item=item)

    def delete(self, seq: int) -> None:
        self.table.delete_item(Key={"id": self._item(seq)["id"]})

    def insert_forged_after(self, seq: int, **fields: Any) -> None:
        before = self._item(seq)
        for item in self._items():
            if int(item["seq"]) > seq:
                item["seq"] = int(item["seq"]) + 1
                self.table.put_item(Item=item)
        forged = _forged(before, **fields)
        self.table.put_item(Item={k: v for k, v in forged.items() if v is not None})

    def s3_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET)
        return [entry["Key"] for entry in listing.get("Contents", [])]


def _forged(before: dict[str, Any], **fields: Any) -> dict[str, Any]:
    forged = {key: value for key, value in before.items() if key != "bodies_s3_key"}
    forged.update(
        id="forged-" + str(before["id"]), seq=int(before["seq"]) + 1, prev_hash=before["hash"]
    )
    forged.update(fields)
    forged["hash"] = row_hash(forged)
    return forged


@contextmanager
def dynamodb_backend() -> Iterator[DynamoDbBackend]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        table = dynamodb.create_table(
            TableName=TABLE_NAME,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("id", "user_id", "timestamp")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": USER_INDEX,
                    "KeySchema": [
                        {"AttributeName": "user_id", "KeyType": "HASH"},
                        {"AttributeName": "timestamp", "KeyType": "RANGE"},
                    ],
                    "Projection": {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": ["tokens_prompt", "tokens_completion", "error_type"],
                    },
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = DynamoDbAuditStore(table, s3=s3, bucket=BUCKET, inline_body_limit=INLINE_BODY_LIMIT)
        yield DynamoDbBackend(store, table, s3)
