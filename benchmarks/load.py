"""6. Load: concurrent clients sending a fixed number of completions through the local API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from benchmarks.report import Result, Verdict, ms
from benchmarks.requests import audit_row_count, bearer, openai_body
from benchmarks.stats import Summary


def measure(
    api_url: str,
    token: str,
    database: Path,
    *,
    workers: int,
    requests: int = 2000,
    clients: int = 64,
    budget_seconds: float = 120.0,
) -> Result:
    rows_before = audit_row_count(database)
    latencies, errors, elapsed = asyncio.run(
        _run(api_url, token, requests=requests, clients=clients, budget_seconds=budget_seconds)
    )
    done = len(latencies) + errors
    rows = audit_row_count(database) - rows_before
    summary = Summary.of(latencies) if latencies else None
    complete = done == requests
    met = complete and errors == 0 and rows == done

    result = Result(
        number=6,
        title=f"Load ({clients} concurrent clients through the local API)",
        method=(
            f"{clients} clients (one asyncio task and keep-alive connection each, httpx, in "
            f"one process) share {requests} non-streaming completions, each sent as soon as the "
            f"client's previous one is answered, through `python -m localapi --workers "
            f"{workers}` (auth, translation and audit on) to the Ollama stand-in. Client, "
            "gateway and stand-in share the machine's cores; latencies include the client's "
            "own queueing."
        ),
        target="zero errors and zero lost audit rows under load",
        measured=f"{errors} errors, {done - rows} rows lost",
        verdict=Verdict.MET if met else Verdict.MISSED,
    )
    result.add("Requests completed / planned", f"{done} / {requests}")
    result.add("Wall time", f"{elapsed:.2f} s")
    result.add("Requests per second", f"{done / elapsed:.0f}")
    if summary is not None:
        result.add(
            "Latency median / p95 / p99",
            f"{ms(summary.median)} / {ms(summary.p95)} / {ms(summary.p99)}",
        )
        result.add("Latency max", ms(summary.maximum))
    result.add("Errors", str(errors))
    result.add("Audit rows written", str(rows))
    if not complete:
        result.notes.append(f"Stopped at the {budget_seconds:.0f} s budget before all requests.")
    return result


async def _run(
    api_url: str, token: str, *, requests: int, clients: int, budget_seconds: float
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + budget_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=api_url, headers=bearer(token), limits=limits, timeout=60
    ) as http:

        async def client() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/chat/completions", json=openai_body())
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed
