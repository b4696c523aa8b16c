"""1. Added latency: sequential non-streaming completions through the local API (auth,
translation and audit on) versus the same requests sent straight to the Ollama stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from benchmarks.clients import client
from benchmarks.report import Result, Verdict, ms
from benchmarks.requests import audit_row_count, bearer, ollama_body, openai_body
from benchmarks.stats import Summary, paired_samples

TARGET_MEDIAN_MS = 1.5


def measure(
    api_url: str,
    ollama_url: str,
    token: str,
    database: Path,
    *,
    count: int = 400,
    warmup: int = 30,
    budget_seconds: float = 60.0,
) -> Result:
    rows_before = audit_row_count(database)
    with (
        client(base_url=api_url, headers=bearer(token), timeout=30) as gateway,
        client(base_url=ollama_url, timeout=30) as direct,
    ):

        def through_gateway() -> float:
            started = time.perf_counter()
            response = gateway.post("/v1/chat/completions", json=openai_body())
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or response.json()["object"] != "chat.completion":
                raise RuntimeError(f"the gateway answered {response.status_code}")
            return elapsed

        def straight() -> float:
            started = time.perf_counter()
            response = direct.post("/api/chat", json=ollama_body())
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or not response.json()["done"]:
                raise RuntimeError(f"the stand-in answered {response.status_code}")
            return elapsed

        paired = paired_samples(
            through_gateway,
            straight,
            count=count,
            warmup=warmup,
            budget_seconds=budget_seconds,
            failures=(RuntimeError, httpx.HTTPError),
        )
    rows = audit_row_count(database) - rows_before
    added = paired.added()
    gateway_ms, direct_ms, errors = paired.gateway_ms, paired.direct_ms, paired.errors
    sent = warmup + len(gateway_ms) + errors
    gateway_summary = Summary.of(gateway_ms)
    direct_summary = Summary.of(direct_ms)

    result = Result(
        number=1,
        title="Added latency (sequential, non-streaming, through the local API)",
        method=(
            f"{added.count} pairs of requests, one at a time over keep-alive connections "
            f"(after {warmup} warm-up pairs): `POST /v1/chat/completions` through "
            "`python -m localapi` (token verified against the OIDC provider's JWKS, request "
            "translated, audit row written to SQLite before the answer leaves) and the same "
            "conversation as `POST /api/chat` straight to the Ollama stand-in. The order "
            "alternates; the figure is the per-pair difference. The local API's own work "
            "(its HTTP/1.1 server and building the API Gateway event, in the worker process "
            "that then calls the handler) is included: API Gateway and Lambda's runtime "
            "replace it in AWS."
        ),
        target=f"median added latency < {TARGET_MEDIAN_MS} ms",
        measured=ms(added.median),
        verdict=Verdict.MET if added.median < TARGET_MEDIAN_MS else Verdict.MISSED,
    )
    result.add("Added latency, median", ms(added.median))
    result.add("Added latency, p95", ms(added.p95))
    result.add("Added latency, p99", ms(added.p99))
    result.add(
        "Through the gateway, median / p99",
        f"{ms(gateway_summary.median)} / {ms(gateway_summary.p99)}",
    )
    result.add(
        "Straight to the stand-in, median / p99",
        f"{ms(direct_summary.median)} / {ms(direct_summary.p99)}",
    )
    result.add("Errors", str(errors))
    result.add("Audit rows written / requests sent", f"{rows} / {sent}")
    if rows != sent:
        result.notes.append(f"{sent - rows} audit rows are missing.")
    return result
