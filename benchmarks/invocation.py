"""2. Per-invocation cost, in-process: API Gateway v2 events into the chat function's Lambda
handler with warm caches, the Ollama transport's connections answered at once in-process (a
socket pair served on the same event loop), and a pyinstrument profile of where the time goes."""

from __future__ import annotations

import base64
import copy
import dataclasses
import gc
import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.inprocess import handlers_in_process
from benchmarks.report import Result, Verdict, ms, us
from benchmarks.servers import AUDIENCE, ROOT
from benchmarks.stats import Summary
from localapi.events import context_for
from localapi.template import load_handler, read_application
from simpleai.settings import Settings
from tests.support.answering import answering, http_answer

TARGET_MEAN_US = 1000.0
MEMORY_INVOCATIONS = 1000
IMAGE_INVOCATIONS = 30
IMAGE_BYTES = 4 * 2**20
"""4 MiB: as base64 in a JSON body, about 5.3 MiB, within Lambda's 6 MB synchronous payload."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAUSE_SECONDS = 0.002
"""Idle time before each of the paused invocations: a function serving sparse requests starts
each one with colder caches (and, on a virtual machine, a sleeping CPU) than a tight loop."""
PROFILE_INTERVAL_SECONDS = 0.0002
PLACEHOLDER = "Bearer REPLACE_WITH_A_TOKEN"

OLLAMA_ANSWER = json.dumps(
    {
        "model": "llama3.2",
        "created_at": "2026-11-19T08:26:40.123456789Z",
        "message": {"role": "assistant", "content": "Hello."},
        "done": True,
        "done_reason": "stop",
        "total_duration": 4_935_886_791,
        "load_duration": 534_986_708,
        "prompt_eval_count": 12,
        "prompt_eval_duration": 107_345_000,
        "eval_count": 2,
        "eval_duration": 4_289_432_000,
    }
).encode()
ANSWER = http_answer(OLLAMA_ANSWER)

# Where the profile's time is attributed: (file suffix, function names). The first match on the
# way down a call stack takes the time of everything below it.
PARTS: dict[str, tuple[str, frozenset[str]]] = {
    "auth (token verification, rate limits)": ("simpleai/webapp.py", frozenset({"authenticated"})),
    "request JSON parse (read_json)": ("simpleai/webapp.py", frozenset({"read_json"})),
    "translation": ("simpleai/translate/", frozenset({"to_ollama_chat", "from_ollama_chat"})),
    "upstream call (framing, socket, parsing; answered at once)": (
        "simpleai/ollama.py",
        frozenset({"chat"}),
    ),
    "audit write": ("simpleai/auditing.py", frozenset({"_write_audit"})),
    "access log line and metrics": ("simpleai/auditing.py", frozenset({"_log"})),
}


def measure(
    issuer: str,
    token: str,
    workdir: Path,
    ollama_url: str,
    *,
    count: int = 3000,
    warmup: int = 200,
    profiled: int = 600,
    paused: int = 1000,
    budget_seconds: float = 30.0,
) -> Result:
    settings = Settings(
        oidc_issuer=issuer,
        oidc_audience=(AUDIENCE,),
        ollama_base_url="http://127.0.0.1:9",  # never reached: the mock transport answers
        database_url=f"sqlite:{workdir / 'invocation.db'}",
    )
    application = read_application(ROOT / "template.yaml")
    function = application.functions["ChatFunction"]
    handler = load_handler(function)
    template = json.loads((ROOT / "events" / "chat.json").read_text())
    assert template["headers"]["authorization"] == PLACEHOLDER
    template["headers"]["authorization"] = f"Bearer {token}"

    def invoke() -> None:
        _answered(handler(copy.deepcopy(template), context_for(function)))

    with handlers_in_process(settings, ollama_connect=answering(ANSWER)[0]):
        for _ in range(warmup):
            invoke()
        samples = _timed(handler, template, function, count, budget_seconds)
        shares, profiled_count = _profile(invoke, profiled, budget_seconds)
        paused_samples = _timed(
            handler, template, function, paused, budget_seconds, pause_seconds=PAUSE_SECONDS
        )
        image_template = _with_image(template, IMAGE_BYTES)
        image_samples = _timed(handler, image_template, function, IMAGE_INVOCATIONS, budget_seconds)
    # The same again with the audit commit not waiting for the disk, to show what the default's
    # fsync costs on this machine.
    relaxed = dataclasses.replace(
        settings,
        audit_synchronous="NORMAL",
        database_url=f"sqlite:{workdir / 'invocation-normal.db'}",
    )
    with handlers_in_process(relaxed, ollama_connect=answering(ANSWER)[0]):
        for _ in range(warmup):
            invoke()
        relaxed_samples = _timed(handler, template, function, count, budget_seconds)

    # Memory, against the Ollama stand-in's own process so that only the gateway's allocations
    # are traced.
    served = dataclasses.replace(
        settings, ollama_base_url=ollama_url, database_url=f"sqlite:{workdir / 'memory.db'}"
    )
    with handlers_in_process(served):
        for _ in range(warmup):
            invoke()
        held_kib = _held_after(invoke, MEMORY_INVOCATIONS) / 1024
        peak_bytes = _peak(
            lambda: _answered(handler(copy.deepcopy(image_template), context_for(function)))
        )
    body_mib = len(image_template["body"]) / 2**20

    summary = Summary.of(samples)
    relaxed_summary = Summary.of(relaxed_samples)
    paused_summary = Summary.of(paused_samples)
    result = Result(
        number=2,
        title="Per-invocation cost (in-process, warm)",
        method=(
            f"{summary.count} API Gateway HTTP API v2 events (events/chat.json with a real "
            "token) into the chat function's Lambda handler (Powertools context, Mangum, "
            "FastAPI, audit middleware, token verification against cached JWKS, translation, "
            "audit row written to SQLite in WAL mode, access line and EMF metrics written to "
            f"/dev/null), after {warmup} warm-up invocations. The Ollama transport's "
            "connections are answered at once by the other half of a socket pair, served on "
            "the same event loop (`runtime.configure(settings, ollama_connect=...)`): the "
            "request is framed, sent, answered and parsed as in production, without a server "
            "process or a network."
        ),
        target=f"mean per-invocation overhead < {TARGET_MEAN_US / 1000:.0f} ms",
        measured=us(summary.mean),
        verdict=Verdict.MET if summary.mean < TARGET_MEAN_US else Verdict.MISSED,
    )
    result.add("Mean", us(summary.mean))
    result.add("Median", us(summary.median))
    result.add("p99", us(summary.p99))
    result.add("Max", us(summary.maximum))
    for part, share in shares.items():
        result.add(f"Share: {part}", f"{share:.0%}")
    result.add("With AUDIT_SYNCHRONOUS=NORMAL: mean", us(relaxed_summary.mean))
    result.add(
        "With AUDIT_SYNCHRONOUS=NORMAL: median / p99",
        f"{us(relaxed_summary.median)} / {us(relaxed_summary.p99)}",
    )
    result.notes.append(
        f"The target is judged on the default, `AUDIT_SYNCHRONOUS=FULL`: each audit commit "
        "waits for the disk (fsync), so an answered request's record survives a power cut. "
        f"The `NORMAL` rows are {relaxed_summary.count} further invocations with that setting "
        "(no fsync at commit; an application crash still loses nothing): the difference is "
        "what this machine's disk charges for the guarantee."
    )
    result.add(
        f"After a {PAUSE_SECONDS * 1000:.0f} ms pause before each: mean / median",
        f"{us(paused_summary.mean)} / {us(paused_summary.median)}",
    )
    result.add(
        f"One request with a {IMAGE_BYTES / 2**20:.0f} MiB image ({body_mib:.1f} MiB body), median",
        ms(Summary.of(image_samples).median / 1000),
    )
    result.add(
        f"Python memory growth over {MEMORY_INVOCATIONS} invocations",
        f"{held_kib:.1f} KiB",
    )
    result.add(
        f"Peak Python memory serving one request with a {IMAGE_BYTES / 2**20:.0f} MiB image "
        f"({body_mib:.1f} MiB body)",
        f"{peak_bytes / 2**20:.1f} MiB",
    )
    result.notes.append(
        f"The image row is {len(image_samples)} further invocations (`FULL`) whose user "
        "message holds a PNG inline, as OpenAI clients send one, answered at once as above: "
        "the request's JSON parse, the image's check, its base64 in the JSON for Ollama and the "
        "audit's hash of it (the stored record keeps the hash, not the image)."
    )
    result.notes.append(
        "The memory rows come from `tracemalloc` (what Python allocates, not SQLite's page "
        "cache or the interpreter itself; section 3 has the whole process's peak), with the "
        "Ollama stand-in answering from its own process over loopback. The growth is the "
        f"traced total after {MEMORY_INVOCATIONS} invocations minus before them (each read "
        f"after a full garbage collection), once {warmup} warm-up invocations and "
        f"{MEMORY_INVOCATIONS} more under the tracer have filled what caches fill: a leak "
        "would grow it with every request. The image "
        "request's peak is counted above what was held before it; its body is within Lambda's "
        "6 MB limit for a synchronous invocation's event."
    )
    result.notes.append(
        f"The paused row is {paused_summary.count} further invocations (`FULL`), each after "
        f"{PAUSE_SECONDS * 1000:.0f} ms of idling: the CPU's caches cool and, on a virtual "
        "machine, the CPU itself sleeps, as between the requests of a function that is not "
        "busy. It is not the target's figure (warm caches), but it is closer to what a "
        "sequential request through the local API (target 1) meets."
    )
    result.notes.append(
        f"Shares come from pyinstrument (statistical, {PROFILE_INTERVAL_SECONDS * 1000:.1f} ms "
        f"interval, wall time) over {profiled_count} "
        "further invocations; each part counts the time of its function and everything it "
        "calls; `rest` is Powertools, Mangum, FastAPI/Starlette routing, "
        "the middleware and the event loop."
    )
    return result


def _timed(
    handler: Callable[[dict[str, Any], Any], Any],
    template: dict[str, Any],
    function: Any,
    count: int,
    budget_seconds: float,
    *,
    pause_seconds: float = 0.0,
) -> list[float]:
    samples: list[float] = []
    deadline = time.monotonic() + budget_seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        event = copy.deepcopy(template)  # outside the timed part, as Lambda hands it over
        context = context_for(function)
        if pause_seconds:
            time.sleep(pause_seconds)
        started = time.perf_counter_ns()
        result = handler(event, context)
        samples.append((time.perf_counter_ns() - started) / 1000)
        _answered(result)
    return samples


def _answered(result: dict[str, Any]) -> None:
    """The benchmarks time answers, not refusals: anything but a 200 stops them."""
    if result["statusCode"] != 200:
        raise RuntimeError(f"the chat handler answered {result['statusCode']}: {result}")


def _held_after(invoke: Callable[[], None], count: int) -> int:
    """Bytes of Python memory by which `count` invocations grew what is allocated, measured
    after `count` others under the tracer (whose first calls fill caches once). Each reading
    follows a full collection, so cyclic garbage not yet collected is not counted."""
    tracemalloc.start()
    try:
        for _ in range(count):
            invoke()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            invoke()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _peak(call: Callable[[], None]) -> int:
    """The most Python memory allocated at once during `call`, above what was held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _with_image(template: dict[str, Any], size: int) -> dict[str, Any]:
    """The event with a user message holding a PNG of `size` bytes, inline as OpenAI sends it."""
    image = PNG_SIGNATURE + os.urandom(size - len(PNG_SIGNATURE))
    event = copy.deepcopy(template)
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    event["body"] = json.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ]
        }
    )
    return event


def _profile(
    invoke: Callable[[], None], count: int, budget_seconds: float
) -> tuple[dict[str, float], int]:
    from pyinstrument import Profiler  # a bench-only dependency (benchmarks/requirements.txt)

    profiler = Profiler(interval=PROFILE_INTERVAL_SECONDS, async_mode="disabled")
    done = 0
    deadline = time.monotonic() + budget_seconds
    profiler.start()
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        invoke()
        done += 1
    profiler.stop()
    root = profiler.last_session.root_frame() if profiler.last_session else None
    if root is None or root.time <= 0:
        return {}, done
    totals = dict.fromkeys(PARTS, 0.0)
    _attribute(root, totals)
    shares = {part: seconds / root.time for part, seconds in totals.items()}
    shares["rest"] = max(0.0, 1.0 - sum(shares.values()))
    return shares, done


def _attribute(frame: Any, totals: dict[str, float]) -> None:
    path = (frame.file_path or "").replace(os.sep, "/")
    for part, (suffix, functions) in PARTS.items():
        # A suffix ending in "/" names a package: any of its modules.
        found = suffix in path if suffix.endswith("/") else path.endswith(suffix)
        if frame.function in functions and found:
            totals[part] += frame.time
            return
    for child in frame.children:
        _attribute(child, totals)
