"""The hash chain that makes the audit log tamper-evident.

Every row carries `seq` (its place in the chain), `prev_hash` (the previous row's hash) and `hash`,
the SHA-256 of a canonical form of all its other fields. Editing a row breaks its own hash;
deleting one breaks the next row's `prev_hash`; inserting one breaks the link of the row after it.
A store computes the hash in the same transaction that reads the previous one, so concurrent
writers extend one chain instead of forking it.

Pruning removes the oldest rows, so the chain's start moves: the store then keeps an anchor (the
`seq` and `hash` of the last pruned row) and verification starts from it instead of from GENESIS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simpleai.audit.records import AuditRecord

GENESIS = "0" * 64
"""The `prev_hash` of the first row ever written."""

# In sorted order, so the canonical JSON is built in that order without json's sort_keys pass.
_HASHED_FIELDS = tuple(sorted((*AuditRecord.__dataclass_fields__, "seq", "prev_hash")))
_BOOLEANS = ("response_truncated", "stream")
_INTEGERS = ("response_status", "seq", "tokens_completion", "tokens_prompt")
_FLOATS = ("latency_ms", "upstream_latency_ms")


def canonical_form(row: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash covers: every record field plus `seq` and `prev_hash`, as JSON
    with sorted keys and no spaces. Booleans and numbers are normalised because SQLite hands
    booleans back as 0/1 and DynamoDB numbers come back as Decimal."""
    values = {name: row.get(name) for name in _HASHED_FIELDS}
    for name in _BOOLEANS:
        values[name] = bool(values[name])
    for name in _INTEGERS:
        if (number := values[name]) is not None:
            values[name] = int(number)
    for name in _FLOATS:
        if (number := values[name]) is not None:
            values[name] = float(number)
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_form(row)).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """Where a pruned chain now starts: the last removed row's `seq` and `hash`."""

    seq: int
    hash: str


@dataclass
class Verification:
    """The outcome of walking a chain: `ok` when `problems` is empty."""

    rows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    anchored_by: str = "genesis"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    rows: Iterable[Mapping[str, Any]], anchor: Anchor | None, *, trust_first: bool = False
) -> Verification:
    """Walk `rows` in `seq` order and report every broken link or hash.

    The first row must follow GENESIS (seq 1) or `anchor`. With `trust_first` (a backend whose
    retention deletes rows without leaving an anchor, such as DynamoDB's TTL) a first row that
    follows neither is accepted as the start, and the report says so.
    """
    report = Verification()
    expected_prev = GENESIS if anchor is None else anchor.hash
    expected_seq = 1 if anchor is None else anchor.seq + 1
    report.anchored_by = "genesis" if anchor is None else f"prune anchor at seq {anchor.seq}"
    for row in rows:
        seq = int(row["seq"])
        if report.rows == 0:
            report.first_seq = seq
            if seq != expected_seq and trust_first and seq > expected_seq:
                expected_prev, expected_seq = str(row["prev_hash"]), seq
                report.anchored_by = f"first remaining row (seq {seq})"
        report.rows += 1
        if seq != expected_seq:
            report.problems.append(f"seq {seq}: expected seq {expected_seq} (a row is missing)")
        if row["prev_hash"] != expected_prev:
            report.problems.append(
                f"seq {seq}: prev_hash does not match the previous row's hash "
                "(a row was deleted, inserted or edited before it)"
            )
        if row_hash(row) != row["hash"]:
            report.problems.append(f"seq {seq}: hash does not match its content (row edited)")
        expected_prev, expected_seq = str(row["hash"]), seq + 1
        report.last_seq, report.head_hash = seq, str(row["hash"])
    return report
