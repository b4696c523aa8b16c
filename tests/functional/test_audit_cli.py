"""`simpleai-audit`, driven through click's CliRunner against real stores."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from simpleai.audit import AuditRecord
from simpleai.audit.cli import cli
from simpleai.audit.sqlite import SqliteAuditStore
from tests.support.audit_backends import TABLE_NAME, dynamodb_backend

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
LONG_AGO = (datetime.now(UTC) - timedelta(days=400)).strftime("%Y-%m-%d")


def record(day: str, user: str, **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "request_path": "/v1/chat/completions",
        "method": "POST",
        "response_status": 200,
        "timestamp": f"{day}T09:30:00.000Z",
        "user_id": user,
        "user_email": f"{user}@example.com",
        "model_used": "llama3.2",
        "tokens_prompt": 10,
        "tokens_completion": 5,
        "latency_ms": 42.0,
    }
    values.update(fields)
    return AuditRecord(**values)


HISTORY = [
    record(LONG_AGO, "alice"),
    record(LONG_AGO, "bob", model_used="llava"),
    record(TODAY, "alice"),
    record(TODAY, "alice", response_status=502, error_type="upstream_error", tokens_prompt=None),
    record(TODAY, "bob", response_status=401, error_type="authentication_error"),
]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore.open(path)
    for entry in HISTORY:
        store.record(entry)
    store.close()
    return path


def run(database: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--database", f"sqlite:{database}", *args])


def lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_tail_shows_the_latest_records_oldest_first(database: Path) -> None:
    output = lines(run(database, "tail", "-n", "2"))

    assert len(output) == 2
    assert "502" in output[0] and "upstream_error" in output[0]
    assert "401" in output[1] and "bob@example.com" in output[1]


def test_tail_json_gives_whole_records(database: Path) -> None:
    (line,) = lines(run(database, "tail", "-n", "1", "--json"))

    row = json.loads(line)
    assert (row["seq"], row["user_id"], row["response_status"]) == (5, "bob", 401)


def test_search_by_user_model_status_and_time(database: Path) -> None:
    def seqs(*filters: str) -> list[int]:
        output = lines(run(database, "search", "--json", *filters))
        return [json.loads(line)["seq"] for line in output]

    assert seqs("--user", "bob") == [2, 5]
    assert seqs("--user", "alice@example.com", "--status", "5xx") == [4]
    assert seqs("--model", "llava") == [2]
    assert seqs("--status", "200") == [1, 2, 3]
    assert seqs("--since", TODAY) == [3, 4, 5]
    assert seqs("--until", TODAY) == [1, 2]
    assert seqs("--since", TODAY, "--limit", "1") == [3]


def test_export_jsonl_to_a_file(database: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"

    result = run(database, "export", "--user", "alice", "--output", str(target))

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["seq"] for row in rows] == [1, 3, 4]
    assert all(row["hash"] and row["prev_hash"] for row in rows)


def test_export_csv_to_stdout(database: Path) -> None:
    result = run(database, "export", "--format", "csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == len(HISTORY)
    assert rows[3]["error_type"] == "upstream_error"
    assert rows[3]["tokens_prompt"] == ""
    assert {"id", "timestamp", "user_id", "seq", "hash"} <= set(rows[0])


def test_stats_counts_requests_and_tokens_per_user_per_day(database: Path) -> None:
    output = lines(run(database, "stats", "--json"))

    assert [json.loads(line) for line in output] == [
        {"day": LONG_AGO, "user": "alice@example.com", "requests": 1, "tokens_prompt": 10,
         "tokens_completion": 5},
        {"day": LONG_AGO, "user": "bob@example.com", "requests": 1, "tokens_prompt": 10,
         "tokens_completion": 5},
        {"day": TODAY, "user": "alice@example.com", "requests": 2, "tokens_prompt": 10,
         "tokens_completion": 10},
        {"day": TODAY, "user": "bob@example.com", "requests": 1, "tokens_prompt": 10,
         "tokens_completion": 5},
    ]  # fmt: skip


def test_stats_as_a_table(database: Path) -> None:
    header, *rows = lines(run(database, "stats", "--since", TODAY))

    assert header.split() == ["day", "user", "requests", "prompt", "completion"]
    assert rows[0].split() == [TODAY, "alice@example.com", "2", "10", "10"]


def test_verify_passes_on_an_untouched_log(database: Path) -> None:
    (line,) = lines(run(database, "verify"))

    assert line.startswith("OK: 5 records, seq 1..5, anchored by genesis")


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_log SET tokens_completion = 0 WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
    ],
)
def test_verify_fails_on_a_tampered_log(database: Path, tamper: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(tamper)

    result = run(database, "verify")

    assert result.exit_code == 1
    assert "FAIL seq" in result.output


def test_prune_deletes_old_records_and_verify_still_passes(database: Path) -> None:
    result = run(database, "prune", "--older-than-days", "30", "--batch-size", "1")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("pruned 2 records written before ")
    (line,) = lines(run(database, "verify"))
    assert line.startswith("OK: 3 records, seq 3..5, anchored by prune anchor at seq 2")


def test_prune_takes_the_retention_period_from_the_environment(database: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--database", str(database), "prune"], env={"AUDIT_RETENTION_DAYS": "30"}
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith("pruned 2 records")


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path / "nowhere.db", "tail")

    assert result.exit_code == 1
    assert "no audit database at" in result.output
    assert not (tmp_path / "nowhere.db").exists()


def test_the_cli_reads_the_dynamodb_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with dynamodb_backend() as backend:
        for entry in HISTORY:
            backend.store.record(entry)

        result = CliRunner().invoke(
            cli, ["--backend", "dynamodb", "--table", TABLE_NAME, "search", "--user", "bob"]
        )
        verified = CliRunner().invoke(
            cli, ["--backend", "dynamodb", "--table", TABLE_NAME, "verify"]
        )

    assert len(lines(result)) == 2
    assert lines(verified)[0].startswith("OK: 5 records")


def test_python_dash_m_runs_the_cli(database: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "simpleai.audit", "--database", str(database), "verify"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("OK: 5 records")


def test_the_cli_leaves_the_journal_mode_of_the_file_alone(tmp_path: Path) -> None:
    # GIVEN a database on a network volume, in rollback-journal mode
    path = tmp_path / "efs.db"
    SqliteAuditStore.open(path, journal_mode="DELETE").close()

    lines(run(path, "verify"))

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_malformed_status_is_a_usage_error(database: Path) -> None:
    result = run(database, "search", "--status", "bad")

    assert result.exit_code == 2
    assert "status code such as 502" in result.output
