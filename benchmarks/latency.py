"""1. Added latency: sequential non-streaming completions through the local API (auth,
translation and audit on) versus the same requests sent straight to the Ollama stand-in."""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.clients import client
from benchmarks.inprocess import handlers_in_process
from benchmarks.report import Result, Verdict, ms
from benchmarks.requests import audit_row_count, bearer, ollama_body, openai_body
from benchmarks.servers import AUDIENCE, ROOT
from benchmarks.stats import Paired, Summary, paired_in_blocks, paired_samples
from localapi.events import HttpRequest, build_event, context_for
from localapi.template import load_handler, read_application
from simpleai.settings import Settings

TARGET_MEDIAN_MS = 1.5
# Rounds of one local API before the other takes its turn (paired_in_blocks).
BLOCK_ROUNDS = 20


def measure(
    api_url: str,
    relaxed_url: str,
    ollama_url: str,
    token: str,
    database: Path,
    *,
    count: int = 400,
    warmup: int = 30,
    budget_seconds: float = 90.0,
) -> Result:
    """`api_url` is the local API with the default durability; `relaxed_url` one with
    `AUDIT_SYNCHRONOUS=NORMAL`, measured in blocks that take turns with the first's, so that
    the two compare."""
    rows_before = audit_row_count(database)
    paired = _in_blocks(api_url, relaxed_url, ollama_url, token, count, warmup, budget_seconds)
    rows = audit_row_count(database) - rows_before
    gateway_ms, direct_ms = paired["gateway"].gateway_ms, paired["gateway"].direct_ms
    added = paired["gateway"].added()
    relaxed = paired["relaxed"].added()
    errors = paired["gateway"].errors + paired["relaxed"].errors
    sent = warmup + len(gateway_ms) + paired["gateway"].errors
    gateway_summary = Summary.of(gateway_ms)
    direct_summary = Summary.of(direct_ms)

    result = Result(
        number=1,
        title="Added latency (sequential, non-streaming, through the local API)",
        method=(
            f"{added.count} rounds, one request at a time over keep-alive connections (after "
            f"{warmup} warm-up rounds): `POST /v1/chat/completions` through `python -m "
            "localapi` (token verified against the OIDC provider's JWKS, request translated, "
            "audit row written to SQLite before the answer leaves) and the same conversation as "
            "`POST /api/chat` straight to the Ollama stand-in, in an order shuffled every "
            "round; each figure is the per-round difference to the straight request. As many "
            "rounds pair a second local API, with `AUDIT_SYNCHRONOUS=NORMAL`, with the straight "
            f"request; the two kinds take turns in blocks of {BLOCK_ROUNDS} rounds. The local "
            "API's own work (its HTTP/1.1 server and building the API Gateway event, in the "
            "worker process that then calls the handler) is included: API Gateway and Lambda's "
            "runtime replace it in AWS."
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
    result.add(
        "With AUDIT_SYNCHRONOUS=NORMAL: added latency, median / p95",
        f"{ms(relaxed.median)} / {ms(relaxed.p95)}",
    )
    if rows != sent:
        result.notes.append(f"{sent - rows} audit rows are missing.")
    result.notes.append(
        "The target is judged on the default, `AUDIT_SYNCHRONOUS=FULL` (each audit commit "
        "waits for the disk, so an answered request's record survives a power cut). The "
        "`NORMAL` row comes from the second local API's blocks of rounds, taken in turn with "
        "the first's (no fsync at commit; an application crash still loses nothing): the "
        "difference is what this machine's disk charges for the guarantee."
    )
    return result


def _in_blocks(
    api_url: str,
    relaxed_url: str,
    ollama_url: str,
    token: str,
    count: int,
    warmup: int,
    budget_seconds: float,
) -> dict[str, Paired]:
    """Chat completions through each local API, paired with the same straight to the stand-in."""
    with (
        client(base_url=api_url, headers=bearer(token), timeout=30) as gateway,
        client(base_url=relaxed_url, headers=bearer(token), timeout=30) as relaxed,
        client(base_url=ollama_url, timeout=30) as direct,
    ):

        def through(api: httpx.Client) -> Callable[[], float]:
            def timed() -> float:
                started = time.perf_counter()
                response = api.post("/v1/chat/completions", json=openai_body())
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or response.json()["object"] != "chat.completion":
                    raise RuntimeError(f"the gateway answered {response.status_code}")
                return elapsed

            return timed

        def straight() -> float:
            started = time.perf_counter()
            response = direct.post("/api/chat", json=ollama_body())
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or not response.json()["done"]:
                raise RuntimeError(f"the stand-in answered {response.status_code}")
            return elapsed

        return paired_in_blocks(
            {"gateway": through(gateway), "relaxed": through(relaxed)},
            straight,
            count=count,
            block=BLOCK_ROUNDS,
            warmup=warmup,
            budget_seconds=budget_seconds,
            failures=(RuntimeError, httpx.HTTPError),
        )


def add_local_api_share(
    result: Result,
    api_url: str,
    issuer: str,
    workdir: Path,
    *,
    count: int = 400,
    warmup: int = 30,
    budget_seconds: float = 30.0,
) -> None:
    """What the local API itself adds (API Gateway's and Lambda's runtime's part in AWS):
    `GET /health` through it against the same handler called in this process, paired."""
    application = read_application(ROOT / "template.yaml")
    function = application.functions["HealthFunction"]
    handler = load_handler(function)
    found = application.match("GET", "/health")
    assert found is not None
    route, parameters = found
    request = HttpRequest(
        "GET",
        "/health",
        "",
        [("host", "127.0.0.1"), ("accept", "*/*"), ("user-agent", "benchmarks")],
        b"",
        "127.0.0.1",
    )
    settings = Settings(
        oidc_issuer=issuer,
        oidc_audience=(AUDIENCE,),
        ollama_base_url="http://127.0.0.1:9",  # /health does not call it
        database_url=f"sqlite:{workdir / 'health-in-process.db'}",
    )

    # http.client rather than httpx: the client's own time counts in this figure, and httpx
    # spends several times more of it per request.
    host, port = api_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    with contextlib.closing(connection), handlers_in_process(settings):

        def through_local_api() -> float:
            started = time.perf_counter()
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"the local API answered {response.status}")
            return elapsed

        def in_process() -> float:
            event = build_event(request, route, parameters)  # the local API's work: untimed
            context = context_for(function)
            started = time.perf_counter()
            answer = handler(event, context)
            elapsed = (time.perf_counter() - started) * 1000
            if answer["statusCode"] != 200:
                raise RuntimeError(f"the health handler answered {answer['statusCode']}")
            return elapsed

        paired = paired_samples(
            through_local_api,
            in_process,
            count=count,
            warmup=warmup,
            budget_seconds=budget_seconds,
            failures=(RuntimeError, OSError, http.client.HTTPException),
        )
    share = paired.added()
    result.add(
        "Local API's own share: GET /health through it minus its handler in-process, median / p95",
        f"{ms(share.median)} / {ms(share.p95)}",
    )
    result.add(
        "GET /health through the local API / its handler in-process, median",
        f"{ms(Summary.of(paired.gateway_ms).median)} / {ms(Summary.of(paired.direct_ms).median)}",
    )
    result.notes.append(
        f"The local API's own share comes from {share.count} further pairs: `GET /health` "
        "through the local API with `http.client` (so it includes that client's side and the "
        "loopback round trip) and the same handler called with the same kind of event in "
        "the measuring process; both write the handler's audit row. In AWS, API Gateway and "
        "Lambda's runtime do this part."
    )
