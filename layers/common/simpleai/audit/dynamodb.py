"""The DynamoDB audit store, for when many concurrent functions write (`AUDIT_BACKEND=dynamodb`).

One item per record, keyed by `id`, plus one chain-head item (`id = "#head"`) holding the last
`seq` and `hash`. A write is one transaction: put the record and move the head, on condition that
the head is still where this writer read it; a writer that lost the race re-reads and retries, so
concurrent functions extend one chain. Bodies that would push an item past DynamoDB's 400 KB
limit go to S3, the item keeping the object's key in `bodies_s3_key`. With retention on, each item
carries `expires_at` (epoch seconds) for the table's TTL.

Reads (`query`, `verify`, `prune`) scan the table: they serve people and a nightly job, not the
request path.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from simpleai.audit.chain import GENESIS, Anchor, Verification, row_hash, verify_chain
from simpleai.audit.records import AuditQuery, AuditRecord, iso_timestamp
from simpleai.errors import AuditUnavailableError
from simpleai.quota import Usage

HEAD_ID = "#head"
USER_INDEX = "user_id-timestamp"
"""Global secondary index (user_id, timestamp): per-user usage without a scan."""
INLINE_BODY_LIMIT = 300_000
"""Bodies larger than this (bytes, both together) go to S3; the rest of an item stays far below
DynamoDB's 400 KB."""
_BODIES = ("request_body", "response_body")
_INTS = ("seq", "response_status", "tokens_prompt", "tokens_completion")
_FLOATS = ("latency_ms", "upstream_latency_ms")
_MAX_ATTEMPTS = 50


class DynamoDbAuditStore:
    def __init__(
        self,
        table: Any,
        *,
        s3: Any = None,
        bucket: str | None = None,
        retention_days: int = 0,
        inline_body_limit: int = INLINE_BODY_LIMIT,
    ) -> None:
        """`table`: a boto3 `dynamodb.Table` resource; `s3`: a boto3 S3 client."""
        self._table = table
        self._client = table.meta.client
        self._s3 = s3
        self._bucket = bucket
        self._retention_days = retention_days
        self._inline_body_limit = inline_body_limit

    @classmethod
    def open(
        cls, table_name: str, *, bucket: str | None = None, retention_days: int = 0
    ) -> DynamoDbAuditStore:
        import boto3  # only this backend needs it; the Lambda Python runtime ships it

        # A session of its own: the runtime builds one store per thread, and boto3's default
        # session is not safe to build resources from concurrently.
        session = boto3.session.Session()
        s3 = session.client("s3") if bucket else None
        table = session.resource("dynamodb").Table(table_name)
        return cls(table, s3=s3, bucket=bucket, retention_days=retention_days)

    def record(self, record: AuditRecord) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        row = record.to_row()
        try:
            bodies_key = self._offload_bodies(row)
            for attempt in range(_MAX_ATTEMPTS):
                if self._try_append(row, bodies_key):
                    return
                # Another writer moved the head first: back off a little and read it again.
                time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))  # noqa: S311
        except (BotoCoreError, ClientError) as exc:
            raise AuditUnavailableError(
                "The audit log cannot be written, so the request was not served."
            ) from exc
        raise AuditUnavailableError("The audit log is too busy to be written; try again.")

    def _try_append(self, row: dict[str, Any], bodies_key: str | None) -> bool:
        from botocore.exceptions import ClientError

        head = self._head()
        seq = int(head["seq"]) if head else 0
        row.update(seq=seq + 1, prev_hash=str(head["hash"]) if head else GENESIS)
        row["hash"] = row_hash(row)
        item = _to_item(row, bodies_key)
        if self._retention_days:
            expires = datetime.fromisoformat(row["timestamp"]) + timedelta(self._retention_days)
            item["expires_at"] = int(expires.timestamp())
        head_condition = "seq = :old" if head else "attribute_not_exists(id)"
        values: dict[str, Any] = {":new": row["seq"], ":hash": row["hash"]}
        if head:
            values[":old"] = seq
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": {"id": HEAD_ID},
                            "UpdateExpression": "SET seq = :new, #hash = :hash",
                            "ConditionExpression": head_condition,
                            "ExpressionAttributeNames": {"#hash": "hash"},
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def _offload_bodies(self, row: dict[str, Any]) -> str | None:
        size = sum(len((row[name] or "").encode()) for name in _BODIES)
        if size <= self._inline_body_limit:
            return None
        if self._s3 is None or not self._bucket:
            raise AuditUnavailableError(
                "An audit record's bodies are too large for DynamoDB and AUDIT_S3_BUCKET is unset."
            )
        key = f"bodies/{row['timestamp'][:10]}/{row['id']}.json"
        payload = json.dumps({name: row[name] for name in _BODIES}).encode()
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=payload, ContentType="application/json"
        )
        return key

    def _head(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._table.get_item(
            Key={"id": HEAD_ID}, ConsistentRead=True
        ).get("Item")
        return found

    def check_writable(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._head()
            if self._s3 is not None and self._bucket:
                self._s3.head_bucket(Bucket=self._bucket)
        except (BotoCoreError, ClientError) as exc:
            raise AuditUnavailableError("The audit table is not reachable.") from exc

    def query(self, query: AuditQuery) -> Iterator[dict[str, Any]]:
        rows = [row for row in self._scan() if query.matches(row)]
        rows.sort(key=lambda row: int(row["seq"]), reverse=query.newest_first)
        for row in rows[: query.limit] if query.limit is not None else rows:
            yield self._with_bodies(row)

    def usage(self, user_id: str, *, window_start: datetime, day_start: datetime) -> Usage:
        """One query on the user index from the earlier of the two starts."""
        from boto3.dynamodb.conditions import Key

        window, day = iso_timestamp(window_start), iso_timestamp(day_start)
        condition = Key("user_id").eq(user_id) & Key("timestamp").gte(min(window, day))
        kwargs: dict[str, Any] = {
            "IndexName": USER_INDEX,
            "KeyConditionExpression": condition,
            "ProjectionExpression": "#t, tokens_prompt, tokens_completion, error_type",
            "ExpressionAttributeNames": {"#t": "timestamp"},
        }
        count, oldest, tokens = 0, None, 0
        while True:
            page = self._table.query(**kwargs)
            for item in page.get("Items", []):
                stamp = str(item["timestamp"])
                if stamp >= day:
                    tokens += int(item.get("tokens_prompt") or 0)
                    tokens += int(item.get("tokens_completion") or 0)
                if stamp >= window and item.get("error_type") != "rate_limit_error":
                    count += 1
                    oldest = stamp if oldest is None else min(oldest, stamp)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return Usage(
            requests_in_window=count,
            oldest_in_window=datetime.fromisoformat(oldest.replace("Z", "+00:00"))
            if oldest
            else None,
            tokens_today=tokens,
        )

    def anchor(self) -> Anchor | None:
        head = self._head() or {}
        if "pruned_seq" not in head:
            return None
        return Anchor(seq=int(head["pruned_seq"]), hash=str(head["pruned_hash"]))

    def verify(self) -> Verification:
        rows = sorted(self._scan(), key=lambda row: int(row["seq"]))
        # TTL deletes expired items without leaving an anchor: the oldest survivor starts the chain.
        return verify_chain(
            (self._with_bodies(row) for row in rows), self.anchor(), trust_first=True
        )

    def prune(self, before: str, *, batch_size: int = 500) -> int:
        """Delete the chain's oldest records written before `before` (and their S3 bodies)."""
        expired: list[dict[str, Any]] = []
        for row in sorted(self._scan(), key=lambda row: int(row["seq"])):
            if row["timestamp"] >= before:
                break
            expired.append(row)
        for start in range(0, len(expired), batch_size):
            batch = expired[start : start + batch_size]
            with self._table.batch_writer() as writer:
                for row in batch:
                    writer.delete_item(Key={"id": row["id"]})
            for row in batch:
                if row.get("bodies_s3_key") and self._s3 is not None:
                    self._s3.delete_object(Bucket=self._bucket, Key=row["bodies_s3_key"])
            last = batch[-1]
            self._table.update_item(
                Key={"id": HEAD_ID},
                UpdateExpression="SET pruned_seq = :seq, pruned_hash = :hash",
                ExpressionAttributeValues={":seq": int(last["seq"]), ":hash": last["hash"]},
            )
        return len(expired)

    def close(self) -> None:
        """Nothing to release: boto3 clients pool their own connections."""

    def _scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            page = self._table.scan(**kwargs)
            for item in page.get("Items", []):
                if item["id"] != HEAD_ID:
                    yield _from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _with_bodies(self, row: dict[str, Any]) -> dict[str, Any]:
        key = row.pop("bodies_s3_key", None)
        if key and self._s3 is not None:
            stored = json.loads(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())
            row.update({name: stored.get(name) for name in _BODIES})
        return row


def _to_item(row: dict[str, Any], bodies_key: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or (bodies_key and name in _BODIES):
            continue  # absent attributes read back as None
        item[name] = Decimal(repr(value)) if isinstance(value, float) else value
    if bodies_key:
        item["bodies_s3_key"] = bodies_key
    return item


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {name: item.get(name) for name in AuditRecord.__dataclass_fields__}
    for name in (*_INTS, *_FLOATS):
        value = item.get(name)
        row[name] = None if value is None else (int(value) if name in _INTS else float(value))
    row.update(
        seq=int(item["seq"]),
        prev_hash=item["prev_hash"],
        hash=item["hash"],
        bodies_s3_key=item.get("bodies_s3_key"),
    )
    return row
