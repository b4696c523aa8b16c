"""`make run`, as a developer starts it: its own process, settings from the environment."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.oidc import Provider

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "simpleai-android"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} in time")


@pytest.fixture
def served(tmp_path: Path, fake_ollama: FakeOllama, oidc: Provider) -> Iterator[tuple[str, Path]]:
    port = free_port()
    database = tmp_path / "audit.db"
    env = {
        **os.environ,
        "OLLAMA_BASE_URL": fake_ollama.url,
        "OIDC_ISSUER": oidc.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "DATABASE_URL": f"sqlite:{database}",
        "PORT": str(port),
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url + "/health", process, time.monotonic() + 60)
        yield url, database
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_make_run_serves_health_models_and_chat(
    served: tuple[str, Path], token: Callable[..., str]
) -> None:
    url, database = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token("alice"), max_retries=0)

    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert [model.id for model in client.models.list().data] == ["llama3.2:latest", "llava:latest"]
    completion = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "ping"}]
    )
    assert completion.choices[0].message.content == "You said: ping"

    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT request_path, user_id, response_status FROM audit_log ORDER BY rowid"
        ).fetchall()
    # The readiness poll's /health calls come first; then ours, in order.
    assert rows[-3:] == [
        ("/health", None, 200),
        ("/v1/models", "alice", 200),
        ("/v1/chat/completions", "alice", 200),
    ]


def test_a_missing_setting_stops_the_server_naming_it(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OIDC_", "OLLAMA_", "DATABASE_URL"))
    }
    env["OIDC_AUDIENCE"] = AUDIENCE

    result = subprocess.run(
        [sys.executable, "-m", "localapi", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "OIDC_ISSUER: required" in result.stderr
