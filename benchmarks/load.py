"""6. Load: concurrent clients sending a fixed number of completions through the local API.

The clients send through the gateway's own lean HTTP/1.1 transport (simpleai/transport.py: one
keep-alive connection, answers parsed by httptools), not httpx's client: on two cores, 64 httpx
clients in one process used a whole core (2-5 ms of CPU a request, more than the gateway's
own), so they, not the gateway, set the throughput and the latencies."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from benchmarks.report import Result, Verdict, ms
from benchmarks.requests import audit_row_count, bearer, openai_body
from benchmarks.stats import Summary
from simpleai.transport import Http11Transport, Timeouts

PATH = "/v1/chat/completions"
TIMEOUTS = Timeouts(connect=60.0, read=60.0, write=60.0)


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
    cpu_before = time.process_time()
    latencies, errors, elapsed = asyncio.run(
        _run(api_url, token, requests=requests, clients=clients, budget_seconds=budget_seconds)
    )
    client_cpu = time.process_time() - cpu_before
    done = len(latencies) + errors
    rows = audit_row_count(database) - rows_before
    summary = Summary.of(latencies) if latencies else None
    complete = done == requests
    met = complete and errors == 0 and rows == done

    result = Result(
        number=6,
        title=f"Load ({clients} concurrent clients through the local API)",
        method=(
            f"{clients} clients (one asyncio task and keep-alive connection each, in one "
            f"process) share {requests} non-streaming completions, each sent as soon as the "
            f"client's previous one is answered, through `python -m localapi --workers "
            f"{workers}` (auth, translation and audit on) to the Ollama stand-in; every answer "
            "is checked to be a 200 chat completion. The local API starts on a new audit "
            "database, which its workers open and migrate together with the first requests, "
            "as a new deployment's first burst does. The clients send through the gateway's "
            "own HTTP/1.1 transport (simpleai/transport.py), so that they cost little next to "
            "the gateway (httpx's client cost more than it). Client, gateway and stand-in "
            "share the machine's cores; latencies include the client's own queueing."
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
    result.add(
        "CPU used by the clients",
        f"{client_cpu:.2f} s ({client_cpu / elapsed:.0%} of a core, "
        f"{client_cpu / max(done, 1) * 1e6:.0f} µs a request)",
    )
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
    body = json.dumps(openai_body()).encode()

    async def client() -> None:
        nonlocal remaining, errors
        # One keep-alive connection per client (the transport reconnects if it closes).
        transport = Http11Transport(api_url, headers=bearer(token), max_idle=1)
        try:
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await transport.request("POST", PATH, body, TIMEOUTS)
                    answer = await response.read()
                except httpx.TransportError:
                    errors += 1
                    continue
                if response.status == 200 and _is_completion(answer):
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
        finally:
            await transport.aclose()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def _is_completion(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("object") == "chat.completion"
