"""An Ollama that is dead, busy or stalled, as the chat handler meets it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from simpleai import runtime
from simpleai.settings import Settings
from tests.support.fake_ollama import FakeOllama, Fault

Invoke = Callable[..., dict[str, Any]]


def error_of(result: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(result["body"])["error"]
    return error


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed: connections to it are refused


def test_a_busy_ollama_is_retried_until_it_answers(invoke: Invoke, fake_ollama: FakeOllama) -> None:
    fake_ollama.queue(Fault(status=503, error="server busy"), Fault(status=503, error="busy"))

    result = invoke("chat", "chat")

    assert result["statusCode"] == 200
    assert len(fake_ollama.requests) == 3


def test_retries_stop_at_the_configured_maximum(
    invoke: Invoke, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(ollama_max_retries=1))
    fake_ollama.queue(*[Fault(status=503, error="server busy")] * 3)

    result = invoke("chat", "chat")

    assert result["statusCode"] >= 500
    assert len(fake_ollama.requests) == 2


def test_a_dead_ollama_is_retried_then_502_naming_its_url(
    invoke: Invoke, make_settings: Callable[..., Settings]
) -> None:
    url = f"http://127.0.0.1:{dead_port()}"
    runtime.configure(make_settings(ollama_base_url=url, ollama_breaker_threshold=10))

    result = invoke("chat", "chat")

    assert result["statusCode"] == 502
    assert url in error_of(result)["message"]
    assert runtime.components().breaker.snapshot()["consecutive_failures"] == 3  # 1 + 2 retries


def test_the_breaker_opens_then_recovers_when_ollama_comes_back(
    invoke: Invoke, make_settings: Callable[..., Settings]
) -> None:
    port = dead_port()
    runtime.configure(
        make_settings(
            ollama_base_url=f"http://127.0.0.1:{port}",
            ollama_max_retries=0,
            ollama_breaker_threshold=2,
            ollama_breaker_cooldown_seconds=0.3,
        )
    )
    assert invoke("chat", "chat")["statusCode"] == 502
    assert invoke("chat", "chat")["statusCode"] == 502

    refused = invoke("chat", "chat")

    assert refused["statusCode"] == 503
    assert error_of(refused)["code"] == "circuit_open"
    assert int(refused["headers"]["retry-after"]) >= 1
    deep = json.loads(invoke("health", "health-deep")["body"])
    assert deep["checks"]["ollama"]["breaker"]["state"] == "open"

    with FakeOllama(port=port):
        deadline = time.monotonic() + 10
        status = refused["statusCode"]
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = invoke("chat", "chat")["statusCode"]

    assert status == 200
    assert runtime.components().breaker.state == "closed"


def test_a_stalled_ollama_is_a_504(
    invoke: Invoke, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(ollama_timeout_seconds=0.3))
    fake_ollama.queue(Fault(stall_seconds=2, status=200))

    result = invoke("chat", "chat")

    assert result["statusCode"] == 504
    assert error_of(result)["type"] == "timeout_error"


def test_the_lambda_deadline_cuts_the_upstream_wait(
    invoke: Invoke, fake_ollama: FakeOllama
) -> None:
    # OLLAMA_TIMEOUT_SECONDS is 10 here; the function has 1 s left, so it must not wait 10.
    fake_ollama.queue(Fault(stall_seconds=3, status=200))

    result = invoke("chat", "chat", timeout_seconds=1)

    assert result["statusCode"] == 504


def test_upstream_credentials_reach_ollama_but_not_the_audit_log(
    invoke: Invoke,
    fake_ollama: FakeOllama,
    make_settings: Callable[..., Settings],
    audit_rows: Callable[[], list[dict[str, Any]]],
) -> None:
    runtime.configure(make_settings(ollama_headers={"Authorization": "Bearer upstream-s3cret"}))

    assert invoke("chat", "chat")["statusCode"] == 200

    assert fake_ollama.headers[-1]["Authorization"] == "Bearer upstream-s3cret"
    settings = runtime.settings()
    assert b"upstream-s3cret" not in settings.database_path.read_bytes()
    assert all("upstream-s3cret" not in json.dumps(row) for row in audit_rows())
