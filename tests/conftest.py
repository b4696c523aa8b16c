"""Fixtures shared by the test tiers.

- `fake_ollama`: an Ollama-speaking HTTP server on loopback (tests/support/fake_ollama.py).
- `oidc`: a real OIDC provider (oidc-provider-mock) with users alice and bob; `token("alice")`.
- `make_settings(**overrides)`: explicit `Settings` pointing at both and at a temporary database.
- `gateway`: the runtime configured with those settings (handlers invoked in-process use them).
- `local_api`: the local API (our `sam local start-api`) serving template.yaml on a free port.
- `invoke(function, event_name, ...)`: a function's real Lambda handler called with an event
  from events/, its placeholder token replaced by a real one.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localapi.events import LambdaContext
from localapi.server import LocalApi, Server
from localapi.template import read_application
from simpleai import runtime
from simpleai.observability import logger
from simpleai.settings import Settings
from tests.support.fake_ollama import FakeOllama
from tests.support.oidc import Provider, running_provider

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
AUDIENCE = "simpleai-android"
USERS = {
    "alice": {"email": "alice@example.com", "name": "Alice"},
    "bob": {"email": "bob@example.com", "name": "Bob"},
}
PLACEHOLDER = "Bearer REPLACE_WITH_A_TOKEN"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the gateway writes to its Powertools log handler's stream (stdout in production):
    every log line, the access lines and the EMF documents."""
    buffer = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.fixture(scope="session")
def oidc() -> Iterator[Provider]:
    with running_provider(USERS) as provider:
        yield provider


@pytest.fixture(scope="session")
def token(oidc: Provider) -> Callable[..., str]:
    """`token("alice")`: an ID token for the gateway's audience (one per user, valid an hour)."""
    issued: dict[tuple[str, str], str] = {}

    def make(sub: str = "alice", client_id: str = AUDIENCE) -> str:
        if (sub, client_id) not in issued:
            issued[sub, client_id] = oidc.id_token(sub, client_id=client_id)
        return issued[sub, client_id]

    return make


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def make_settings(
    tmp_path: Path, fake_ollama: FakeOllama, oidc: Provider
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "oidc_issuer": oidc.issuer,
            "oidc_audience": (AUDIENCE,),
            "ollama_base_url": fake_ollama.url,
            "database_url": f"sqlite:{tmp_path / 'audit.db'}",
            "ollama_timeout_seconds": 10.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def gateway(make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    settings = make_settings()
    runtime.configure(settings)
    yield settings
    runtime.configure(None)


@pytest.fixture
def audit_rows(gateway: Settings) -> Callable[[], list[dict[str, Any]]]:
    """Every audit row written so far, oldest first, read straight from the database file."""

    def read() -> list[dict[str, Any]]:
        with sqlite3.connect(gateway.database_path) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute("SELECT * FROM audit_log ORDER BY rowid")]

    return read


@pytest.fixture
def local_api(gateway: Settings) -> Iterator[str]:
    api = LocalApi(read_application(ROOT / "template.yaml"), workers=4)
    server = Server(api).start()
    yield server.url
    server.stop()


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@pytest.fixture
def invoke(gateway: Settings, token: Callable[..., str]) -> Iterator[Callable[..., dict[str, Any]]]:
    """Call a function's Lambda handler with an event file, as the Lambda runtime would: on a
    fresh event loop of this thread (Mangum runs each invocation on the current one), whatever
    an earlier test's `asyncio.run` left behind."""
    application = read_application(ROOT / "template.yaml")
    api = LocalApi(application, workers=1)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def call(
        function: str,
        event_name: str,
        *,
        user: str | None = "alice",
        body: Any = None,
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        timeout_seconds: int = 30,
    ) -> dict[str, Any]:
        event = copy.deepcopy(load_event(event_name))
        if path is not None:
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
        if event["headers"].get("authorization") == PLACEHOLDER:
            if user is None:
                del event["headers"]["authorization"]
            else:
                event["headers"]["authorization"] = f"Bearer {token(user)}"
        if body is not None:
            event["body"] = json.dumps(body)
        if raw_body is not None:
            event["body"] = raw_body
        event["headers"].update(headers or {})
        logical_id = {"chat": "ChatFunction", "health": "HealthFunction"}.get(function, function)
        handler = api._handler(logical_id)
        context = LambdaContext(
            function_name=logical_id, memory_limit_in_mb=512, timeout_seconds=timeout_seconds
        )
        result: dict[str, Any] = handler(event, context)
        return result

    yield call
    api.close()
    asyncio.set_event_loop(None)
    loop.close()
