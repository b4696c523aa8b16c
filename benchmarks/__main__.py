"""`python -m benchmarks`: run the measurements and write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    audit_store,
    cold_start,
    invocation,
    latency,
    load,
    streaming,
)
from benchmarks.machine import cpu_times, describe, steal_share
from benchmarks.report import Result, render
from benchmarks.servers import ROOT, Setup, setup

LOCAL_API_WORKERS = 8
DRY_RUN_BANNER = (
    "Dry run: measured on a busy machine (other jobs were running on its cores), to show that "
    "the harness works. The figures are noisy and say little about the gateway; rerun "
    "`make bench` on a quiet machine."
)


def _invocation(context: Setup) -> list[Result]:
    return [invocation.measure(context.issuer, context.token, context.workdir, context.ollama_url)]


def _audit_store(context: Setup) -> list[Result]:
    return [audit_store.measure(context.workdir)]


def _cold_start(context: Setup) -> list[Result]:
    env = context.gateway_env(context.workdir / "cold-start.db")
    return [cold_start.measure(context.token, env, context.workdir)]


def _local_api(context: Setup) -> list[Result]:
    database = context.workdir / "local-api.db"
    relaxed = context.workdir / "local-api-normal.db"
    with (
        context.local_api(database, workers=LOCAL_API_WORKERS) as api,
        context.local_api(relaxed, workers=LOCAL_API_WORKERS, AUDIT_SYNCHRONOUS="NORMAL") as fast,
    ):
        added = latency.measure(api.url, fast.url, context.ollama_url, context.token, database)
    with context.local_api(database, workers=LOCAL_API_WORKERS) as api:
        latency.add_local_api_share(added, api.url, context.issuer, context.workdir)
    # The load starts on a new database with workers that have not opened it yet, as a new
    # deployment meets its first burst: all of them open and migrate it at once.
    loaded_database = context.workdir / "load.db"
    with context.local_api(loaded_database, workers=LOCAL_API_WORKERS) as api:
        loaded = load.measure(api.url, context.token, loaded_database, workers=LOCAL_API_WORKERS)
    return [added, loaded]


def _streaming(context: Setup) -> list[Result]:
    database = context.workdir / "streaming.db"
    with context.chat_under_uvicorn(database) as chat:
        return [streaming.measure(chat.url, context.ollama_url, context.token, database)]


# Measurement groups in the order they run; in-process work first, while nothing else runs.
GROUPS: dict[str, Callable[[Setup], list[Result]]] = {
    "invocation": _invocation,
    "audit-store": _audit_store,
    "cold-start": _cold_start,
    "local-api": _local_api,
    "streaming": _streaming,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(GROUPS),
        help="run only these groups (repeatable); the doc is then written only with --output",
    )
    parser.add_argument("--output", type=Path, help="default: docs/benchmarks.md")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="mark the figures as a dry run on a busy machine",
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the OIDC provider's access log

    machine = describe(ROOT)
    counters = cpu_times()
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="simpleai-bench-") as workdir,
        setup(Path(workdir)) as context,
    ):
        for name, group in GROUPS.items():
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
            results.extend(group(context))
            print(
                f"benchmarks: {name} done in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    stolen = steal_share(counters, cpu_times())
    machine.append(("CPU stolen by the hypervisor during the run", stolen))
    results.sort(key=lambda result: result.number)
    for result in results:
        print(f"\n{result.number}. {result.title}")
        for figure, value in result.figures:
            print(f"   {figure}: {value}")
        if result.target:
            verdict = result.verdict.value if result.verdict else "-"
            print(f"   target {result.target}: {verdict}")
    output = args.output or (None if args.only else ROOT / "docs" / "benchmarks.md")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(
            render(
                results,
                machine,
                command="make bench",
                banner=DRY_RUN_BANNER if args.dry_run else None,
            )
        )
        print(f"\nbenchmarks: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
