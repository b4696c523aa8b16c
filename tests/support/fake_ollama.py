"""An HTTP server that speaks Ollama's native API as its documentation describes it
(docs/api.md in the ollama repository): `POST /api/chat` (NDJSON streaming by default, or one JSON
object with `"stream": false`), `GET /api/tags`, `GET /api/version`, `POST /api/show`, and
errors as `{"error": "..."}`. Ollama itself cannot run here; the tests start this instead.

By default a chat answer echoes the last user message. Tests queue `Reply`s to script answers
(tool calls, thinking, a done_reason) and `Fault`s to script failures (a status, a stall, a
mid-stream error, a malformed body). Every request body received is kept in `requests`.

    python -m tests.support.fake_ollama --port 11434     # a stand-in for `make run` by hand
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "0.12.6"


@dataclass
class Reply:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    thinking: str | None = None
    done_reason: str = "stop"
    prompt_eval_count: int = 12
    eval_count: int = 7
    chunks: int = 3
    """How many content pieces a streamed answer is cut into."""
    pace: threading.Semaphore | None = None
    """When set, each streamed piece after the first waits for one release of it, so a test
    decides when the next piece leaves (an unreleased piece ends the stream after 10 s)."""


@dataclass
class Fault:
    status: int = 500
    error: str = "internal error"
    stall_seconds: float = 0.0
    """Sleep this long before answering (a stalled Ollama)."""
    mid_stream: bool = False
    """Stream one content line, then an error line with status 200, as Ollama does."""
    malformed: bool = False
    """Answer 200 with a body that is not JSON."""
    hold: threading.Event | None = None
    """Say nothing until this is set (a stalled Ollama that the test releases at its end)."""
    cut_short: bool = False
    """Stream one content line, then end the body without the `done` line."""
    lines: list[dict[str, Any]] | None = None
    """Stream exactly these objects with status 200 (say, Ollama's error line first)."""


@dataclass
class Model:
    name: str
    size: int = 2_019_393_189
    family: str = "llama"
    modified_at: str = "2026-10-01T12:00:00.123456789Z"


class FakeOllama:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: list[Model] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """With `tls`, a server context, it speaks https, as an Ollama behind a TLS proxy."""
        self.models = (
            models if models is not None else [Model("llama3.2:latest"), Model("llava:latest")]
        )
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.script: deque[Reply | Fault] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self) -> FakeOllama:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *items: Reply | Fault) -> None:
        with self._lock:
            self.script.extend(items)

    def next_item(self, request: dict[str, Any]) -> Reply | Fault:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.popleft()
        return Reply(content=_echo(request))

    def model_names(self) -> set[str]:
        names = {model.name for model in self.models}
        return names | {name.removesuffix(":latest") for name in names}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_OllamaHandler):
            ollama = fake

        return Handler


def _echo(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            return f"You said: {message.get('content', '')}"
    return "Hello."


def _undecodable_image(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        for image in (message.get("images") or []) if isinstance(message, dict) else []:
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, TypeError, ValueError):
                return "illegal base64 data at input byte 0"
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class _OllamaHandler(BaseHTTPRequestHandler):
    ollama: FakeOllama
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK, about 40 ms on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.ollama.paths.append(self.path)
        if self.path == "/api/version":
            self._json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            self._json(200, {"models": [_tag(model) for model in self.ollama.models]})
        elif self.path == "/":
            self._text(200, "Ollama is running")
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        self.ollama.paths.append(self.path)
        self.ollama.headers.append(dict(self.headers.items()))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": "invalid character in request body"})
            return
        if self.path == "/api/show":
            self._show(body)
        elif self.path == "/api/chat":
            self._chat(body)
        else:
            self._json(404, {"error": "404 page not found"})

    def _show(self, body: dict[str, Any]) -> None:
        if body.get("model") not in self.ollama.model_names():
            self._json(404, {"error": f"model '{body.get('model')}' not found"})
            return
        self._json(200, {"details": {"family": "llama"}, "capabilities": ["completion", "tools"]})

    def _chat(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            self._json(400, {"error": "model is required"})
            return
        if not isinstance(body.get("messages", []), list):
            self._json(400, {"error": "invalid messages"})
            return
        bad_image = _undecodable_image(body)
        if bad_image:  # Go decodes `images` as []byte: invalid base64 fails the whole request
            self._json(400, {"error": bad_image})
            return
        item = self.ollama.next_item(body)
        if body["model"] not in self.ollama.model_names() and not isinstance(item, Fault):
            self._json(404, {"error": f'model "{body["model"]}" not found, try pulling it first'})
            return
        stream = body.get("stream", True)  # Ollama streams unless told not to
        if isinstance(item, Fault):
            self._fault(item, body["model"], stream)
        elif stream:
            self._stream(item, body["model"])
        else:
            self._json(200, _final(item, body["model"], whole=True))

    def _fault(self, fault: Fault, model: str, stream: bool) -> None:
        if fault.stall_seconds:
            time.sleep(fault.stall_seconds)
        if fault.hold is not None:
            fault.hold.wait(timeout=30)
        if fault.malformed:
            self._text(200, "<html>not json</html>", "text/html")
        elif fault.mid_stream and stream:
            self._start_stream()
            self._chunk(_line(model, "partial ", done=False))
            self._chunk(json.dumps({"error": fault.error}).encode() + b"\n")
            self._chunk(b"")
        elif fault.lines is not None and stream:
            self._start_stream()
            for line in fault.lines:
                self._chunk(json.dumps(line).encode() + b"\n")
            self._chunk(b"")
        elif fault.cut_short and stream:
            self._start_stream()
            self._chunk(_line(model, "partial ", done=False))
            self._chunk(b"")
        else:
            self._json(fault.status, {"error": fault.error})

    def _stream(self, reply: Reply, model: str) -> None:
        self._start_stream()
        if reply.thinking:
            self._chunk(_line(model, "", done=False, thinking=reply.thinking))
        for number, piece in enumerate(_pieces(reply.content, reply.chunks)):
            if number and reply.pace is not None and not reply.pace.acquire(timeout=10):
                self.close_connection = True
                return
            self._chunk(_line(model, piece, done=False))
        if reply.tool_calls:
            self._chunk(_line(model, "", done=False, tool_calls=reply.tool_calls))
        final = _final(reply, model, whole=False)
        self._chunk(json.dumps(final).encode() + b"\n")
        self._chunk(b"")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._text(status, json.dumps(body), "application/json; charset=utf-8")

    def _text(self, status: int, text: str, content_type: str = "text/plain") -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _pieces(text: str, count: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _line(
    model: str,
    content: str,
    *,
    done: bool,
    thinking: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return (
        json.dumps(
            {"model": model, "created_at": _now(), "message": message, "done": done}
        ).encode()
        + b"\n"
    )


def _final(reply: Reply, model: str, *, whole: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content if whole else ""}
    if whole and reply.thinking:
        message["thinking"] = reply.thinking
    if whole and reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "model": model,
        "created_at": _now(),
        "message": message,
        "done": True,
        "done_reason": reply.done_reason,
        "total_duration": 4_935_886_791,
        "load_duration": 534_986_708,
        "prompt_eval_count": reply.prompt_eval_count,
        "prompt_eval_duration": 107_345_000,
        "eval_count": reply.eval_count,
        "eval_duration": 4_289_432_000,
    }


def _tag(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": model.modified_at,
        "size": model.size,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": model.family,
            "families": [model.family],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="An Ollama-speaking server for local testing.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    args = parser.parse_args()
    fake = FakeOllama(args.host, args.port)
    print(f"fake Ollama on {fake.url}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
