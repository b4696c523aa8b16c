"""The chat function's FastAPI app served by uvicorn (no Mangum, which cannot stream): its
server-sent events leave one by one while Ollama is still producing the answer."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from localapi.template import load_handler, read_application
from simpleai.settings import Settings
from tests.support.fake_ollama import FakeOllama, Reply

ROOT = Path(__file__).resolve().parents[2]
Rows = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def chat_app_url(gateway: Settings) -> Iterator[str]:
    """functions/chat/app.py's `app` under uvicorn on a loopback port."""
    function = read_application(ROOT / "template.yaml").functions["ChatFunction"]
    app = load_handler(dataclasses.replace(function, handler="app.app"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def events(lines: Iterator[str]) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream, as they arrive."""
    for line in lines:
        if line.startswith("data: "):
            yield line.removeprefix("data: ")


def test_chunks_arrive_one_by_one_before_the_stream_ends(
    chat_app_url: str, token: Callable[..., str], fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    # GIVEN an Ollama that sends each piece after the first only when the test says so
    pace = threading.Semaphore(0)
    fake_ollama.queue(Reply(content="one two six.", chunks=3, pace=pace))
    body = {"messages": [{"role": "user", "content": "Count"}], "stream": True}
    headers = {"Authorization": f"Bearer {token('alice')}"}

    with httpx.stream(
        "POST", f"{chat_app_url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"].startswith("no-store")
        received = events(response.iter_lines())

        # WHEN the pieces are released one at a time
        # THEN each arrives while Ollama still holds back the rest of the answer
        deltas = []
        for release_next in (True, True, False):
            chunk = json.loads(next(received))
            while not chunk["choices"][0]["delta"].get("content"):
                chunk = json.loads(next(received))  # the role chunk
            deltas.append(chunk["choices"][0]["delta"]["content"])
            # Ollama cannot send more until released: had the gateway buffered the stream, the
            # read above would have waited for the fake's 10 s give-up and got no such piece.
            if release_next:
                pace.release()
        rest = list(received)

    assert deltas == ["one ", "two ", "six."]
    assert json.loads(rest[0])["choices"][0]["finish_reason"] == "stop"
    assert rest[-1] == "[DONE]"
    (row,) = audit_rows()
    assert (row["stream"], row["finish_reason"], row["tokens_prompt"]) == (1, "stop", 12)
    assert json.loads(row["response_body"])["choices"][0]["message"]["content"] == "one two six."


def test_a_caller_who_hangs_up_mid_stream_ends_it_at_once_and_is_audited(
    chat_app_url: str, token: Callable[..., str], fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    # GIVEN a stream whose second piece Ollama holds back (for 10 s, unless released)
    fake_ollama.queue(Reply(content="one two six.", chunks=3, pace=threading.Semaphore(0)))
    body = {"messages": [{"role": "user", "content": "Count"}], "stream": True}
    headers = {"Authorization": f"Bearer {token('alice')}"}

    # WHEN the caller reads the first piece and goes away
    with httpx.stream(
        "POST", f"{chat_app_url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as response:
        assert json.loads(next(events(response.iter_lines())))["object"] == "chat.completion.chunk"

    # THEN the gateway notices well before Ollama would give up, and records why the stream ended
    deadline = time.monotonic() + 5
    while not audit_rows():
        assert time.monotonic() < deadline, "the stream outlived its caller"
        time.sleep(0.02)
    (row,) = audit_rows()
    assert (row["stream"], row["error_type"]) == (1, "client_disconnected")
