"""`sam local start-api` serving the built images, driven with real requests.

Run by `make sam-local-test` (deploy/samlocal/run.sh), which starts a Docker engine, builds the
stand-in base image and runs `sam build` first; plain `pytest` skips this module unless
SAM_LOCAL_TEST=1. Here: the Ollama stand-in and an OIDC provider on the host's loopback, a
Docker API proxy that gives the function containers the host's network and the audit directory,
and `sam local start-api --skip-pull-image` through that proxy.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import AUDIENCE, ROOT, USERS
from tests.support.oidc import Provider, running_provider

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        os.environ.get("SAM_LOCAL_TEST") != "1",
        reason="needs Docker and a sam build: make sam-local-test (SAM_LOCAL_TEST=1)",
    ),
]

SAM = os.environ.get("SAM", str(ROOT / ".venv-sam" / "bin" / "sam"))
START_DEADLINE = 180.0
"""Seconds for start-api to build its emulator images and warm both containers."""


@dataclass
class Stack:
    url: str
    provider: Provider
    audit_db: Path
    log: Path

    def rows(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.audit_db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute("SELECT * FROM audit_log ORDER BY rowid")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Any, deadline_seconds: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"{what} not ready within {deadline_seconds:.0f} s\n{tail}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes], first: int = signal.SIGINT) -> None:
    """Ask politely (SAM removes its containers on Ctrl-C), then insist."""
    if process.poll() is not None:
        return
    process.send_signal(first)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("sam-local")
    audit_dir = work / "audit"
    audit_dir.mkdir()
    log = work / "sam.log"
    started: list[subprocess.Popen[bytes]] = []
    try:
        ollama_port = free_port()
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.fake_ollama", "--port", str(ollama_port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
        )
        ollama_url = f"http://127.0.0.1:{ollama_port}"
        wait_until(lambda: answers(ollama_url + "/api/version"), 20, "fake Ollama")

        proxy_socket = work / "docker.sock"
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "deploy" / "samlocal" / "docker_api_proxy.py"),
                    "--listen",
                    str(proxy_socket),
                    "--mount",
                    str(audit_dir),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_until(proxy_socket.exists, 20, "Docker API proxy")

        with running_provider(USERS) as provider:
            # Containers share the host's network: the issuer is the same string inside and out.
            provider = Provider(issuer=provider.issuer.replace("localhost", "127.0.0.1"))
            api_port = free_port()
            overrides = {
                "OllamaBaseUrl": ollama_url,
                "OidcIssuer": provider.issuer,
                "OidcAudience": AUDIENCE,
                "DatabaseUrl": f"sqlite:{audit_dir}/audit.db",
                "LogLevel": "INFO",
            }
            env = {**os.environ, "DOCKER_HOST": f"unix://{proxy_socket}", "SAM_CLI_TELEMETRY": "0"}
            with log.open("wb") as log_file:
                sam = subprocess.Popen(
                    [
                        SAM,
                        "local",
                        "start-api",
                        "--skip-pull-image",
                        "--warm-containers",
                        "EAGER",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(api_port),
                        "--parameter-overrides",
                        " ".join(f"{key}={value}" for key, value in overrides.items()),
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(sam)
            url = f"http://127.0.0.1:{api_port}"
            wait_until(
                lambda: sam.poll() is not None or answers(url + "/health"),
                START_DEADLINE,
                "sam local start-api",
                log,
            )
            assert sam.poll() is None, log.read_text(errors="replace")[-4000:]
            yield Stack(url=url, provider=provider, audit_db=audit_dir / "audit.db", log=log)
    finally:
        for process in reversed(started):
            stop(process, signal.SIGINT if process is started[-1] else signal.SIGTERM)


def test_health_answers_from_its_container(stack: Stack) -> None:
    response = httpx.get(stack.url + "/health", timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_chat_completion_with_the_openai_client_is_answered_and_audited(stack: Stack) -> None:
    # GIVEN a verified identity and the official client pointed at sam local
    client = openai.OpenAI(
        base_url=stack.url,
        api_key=stack.provider.id_token("alice", client_id=AUDIENCE),
        max_retries=0,
        timeout=60,
    )

    # WHEN it asks for a completion
    completion = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "Hello from a container"}]
    )

    # THEN the Ollama stand-in's answer comes back, and the mounted audit file holds the exchange
    assert completion.choices[0].message.content == "You said: Hello from a container"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    rows = [row for row in stack.rows() if row["request_path"] == "/chat/completions"]
    assert any(
        row["response_status"] == 200
        and row["user_id"] == "alice"
        and "Hello from a container" in row["request_body"]
        and row["tokens_completion"] == completion.usage.completion_tokens
        for row in rows
    ), rows


def test_request_without_a_token_is_refused_and_audited(stack: Stack) -> None:
    response = httpx.post(
        stack.url + "/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    assert any(
        row["response_status"] == 401
        and not row["user_id"]
        and row["error_type"] == "authentication_error"
        for row in stack.rows()
    )
