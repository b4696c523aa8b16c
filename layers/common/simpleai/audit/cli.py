"""`simpleai-audit` (or `python -m simpleai.audit`): read, export, verify and prune the audit log.

The store comes from the same environment variables the functions read (DATABASE_URL,
AUDIT_BACKEND, AUDIT_DYNAMODB_TABLE, AUDIT_S3_BUCKET) or from the options, so an operator can
point it at a copy of the database file as easily as at the live one.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click

from simpleai.audit import AuditStore, open_backend
from simpleai.audit.records import AuditQuery, AuditRecord
from simpleai.errors import AuditUnavailableError
from simpleai.settings import AUDIT_BACKENDS, JOURNAL_MODES, parse_database_url

EXPORT_COLUMNS = (*AuditRecord.__dataclass_fields__, "seq", "prev_hash", "hash")
_TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]


@click.group()
@click.option(
    "--database",
    envvar="DATABASE_URL",
    default="sqlite:./data/audit.db",
    show_default=True,
    help="SQLite database: a sqlite: URL or a plain path [env DATABASE_URL].",
)
@click.option(
    "--backend",
    envvar="AUDIT_BACKEND",
    type=click.Choice(AUDIT_BACKENDS),
    default="sqlite",
    show_default=True,
    help="[env AUDIT_BACKEND]",
)
@click.option(
    "--journal-mode",
    envvar="AUDIT_JOURNAL_MODE",
    type=click.Choice(JOURNAL_MODES, case_sensitive=False),
    help="set the SQLite journal mode; unset leaves the file's as it is [env AUDIT_JOURNAL_MODE]",
)
@click.option("--table", envvar="AUDIT_DYNAMODB_TABLE", help="[env AUDIT_DYNAMODB_TABLE]")
@click.option("--bucket", envvar="AUDIT_S3_BUCKET", help="[env AUDIT_S3_BUCKET]")
@click.pass_context
def cli(
    ctx: click.Context,
    database: str,
    backend: str,
    journal_mode: str | None,
    table: str | None,
    bucket: str | None,
) -> None:
    """Read, export, verify and prune the SimpleAI Gateway audit log."""

    def open_store() -> AuditStore:
        path = parse_database_url(database) if database.startswith("sqlite:") else Path(database)
        if backend == "sqlite" and not path.exists():
            raise click.ClickException(f"no audit database at {path}")
        try:
            store = open_backend(
                backend,
                database_path=path,
                journal_mode=journal_mode.upper() if journal_mode else None,
                table=table,
                bucket=bucket,
            )
        except (AuditUnavailableError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        ctx.call_on_close(store.close)
        return store

    ctx.obj = open_store


def _store() -> AuditStore:
    opener = click.get_current_context().find_root().obj
    store: AuditStore = opener()
    return store


def _timestamp(value: datetime | None) -> str | None:
    """A time from the command line as the records spell it (UTC, naive input taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _filters(function: Any) -> Any:
    """The options `search`, `export` and `stats` share."""
    options = [
        click.option("--user", help="user_id or user_email"),
        click.option("--model", help="model_used, exactly"),
        click.option("--status", callback=_status, help="a status code (502) or class (5xx)"),
        click.option("--since", type=click.DateTime(_TIME_FORMATS), help="from (UTC, inclusive)"),
        click.option("--until", type=click.DateTime(_TIME_FORMATS), help="to (UTC, exclusive)"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _status(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        AuditQuery(status=value).status_range()
    except ValueError:
        raise click.BadParameter("give a status code such as 502 or a class such as 5xx") from None
    return value


def _query(limit: int | None = None, **filters: Any) -> AuditQuery:
    return AuditQuery(
        user=filters.get("user"),
        model=filters.get("model"),
        status=filters.get("status"),
        since=_timestamp(filters.get("since")),
        until=_timestamp(filters.get("until")),
        limit=limit,
    )


def _summary(row: dict[str, Any]) -> str:
    tokens = f"{row['tokens_prompt'] or 0}+{row['tokens_completion'] or 0}"
    return "  ".join(
        [
            row["timestamp"],
            str(row["response_status"]),
            row["method"],
            row["request_path"],
            row.get("user_email") or row.get("user_id") or "-",
            row.get("model_used") or "-",
            f"tokens={tokens}",
            f"{row['latency_ms'] or 0:.0f}ms",
            row.get("error_type") or "",
        ]
    ).rstrip()


def _print_rows(rows: Iterable[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False) if as_json else _summary(row))


@cli.command()
@click.option("-n", "--lines", default=20, show_default=True, help="how many records")
@click.option("--json", "as_json", is_flag=True, help="whole records as JSON Lines")
def tail(lines: int, as_json: bool) -> None:
    """The latest records, oldest first."""
    rows = list(_store().query(AuditQuery(limit=lines, newest_first=True)))
    _print_rows(reversed(rows), as_json)


@cli.command()
@_filters
@click.option("--limit", type=int, help="at most this many records")
@click.option("--json", "as_json", is_flag=True, help="whole records as JSON Lines")
def search(limit: int | None, as_json: bool, **filters: Any) -> None:
    """Records by user, model, status and time range."""
    _print_rows(_store().query(_query(limit, **filters)), as_json)


@cli.command()
@_filters
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-")
def export(fmt: str, output: TextIO, **filters: Any) -> None:
    """Whole records as JSON Lines or CSV (to stdout unless --output)."""
    rows = _store().query(_query(**filters))
    count = _write_csv(rows, output) if fmt == "csv" else _write_jsonl(rows, output)
    if output is not sys.stdout:
        click.echo(f"exported {count} records", err=True)


def _write_jsonl(rows: Iterator[dict[str, Any]], output: TextIO) -> int:
    count = 0
    for count, row in enumerate(rows, start=1):  # noqa: B007
        output.write(json.dumps(row, ensure_ascii=False) + "\n")
    return count


def _write_csv(rows: Iterator[dict[str, Any]], output: TextIO) -> int:
    writer = csv.DictWriter(output, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for count, row in enumerate(rows, start=1):  # noqa: B007
        writer.writerow(row)
    return count


@cli.command()
@_filters
@click.option("--json", "as_json", is_flag=True, help="one JSON object per user and day")
def stats(as_json: bool, **filters: Any) -> None:
    """Requests and tokens per user per day."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in _store().query(_query(**filters)):
        key = (row["timestamp"][:10], row.get("user_email") or row.get("user_id") or "-")
        entry = totals[key]
        entry[0] += 1
        entry[1] += row.get("tokens_prompt") or 0
        entry[2] += row.get("tokens_completion") or 0
    if not as_json:
        click.echo(
            f"{'day':<10}  {'user':<32}  {'requests':>8}  {'prompt':>10}  {'completion':>10}"
        )
    for (day, user), (requests, prompt, completion) in sorted(totals.items()):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "day": day,
                        "user": user,
                        "requests": requests,
                        "tokens_prompt": prompt,
                        "tokens_completion": completion,
                    }
                )
            )
        else:
            click.echo(f"{day:<10}  {user:<32}  {requests:>8}  {prompt:>10}  {completion:>10}")


@cli.command()
def verify() -> None:
    """Check the hash chain; exit status 1 if any row was edited, deleted or inserted."""
    report = _store().verify()
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    if not report.ok:
        raise SystemExit(1)
    if report.rows == 0:
        click.echo(f"OK: no records (anchored by {report.anchored_by})")
        return
    click.echo(
        f"OK: {report.rows} records, seq {report.first_seq}..{report.last_seq}, "
        f"anchored by {report.anchored_by}; head hash {report.head_hash}"
    )


@cli.command()
@click.option(
    "--older-than-days",
    "days",
    type=click.IntRange(min=1),
    envvar="AUDIT_RETENTION_DAYS",
    required=True,
    help="delete records older than this many days [env AUDIT_RETENTION_DAYS]",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
def prune(days: int, batch_size: int) -> None:
    """Delete records older than the retention period, oldest first."""
    before = _timestamp(datetime.now(UTC) - timedelta(days=days))
    assert before is not None
    removed = _store().prune(before, batch_size=batch_size)
    click.echo(f"pruned {removed} records written before {before}")


def main() -> None:
    cli(prog_name="simpleai-audit")
