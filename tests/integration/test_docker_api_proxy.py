"""The Docker Engine API proxy of make sam-local-test, between a client and a stand-in engine."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT

PROXY = ROOT / "deploy" / "samlocal" / "docker_api_proxy.py"


class Engine(socketserver.ThreadingUnixStreamServer):
    """Answers like dockerd on a unix socket and keeps what it was sent."""

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.received: list[tuple[str, str, dict[str, Any] | None]] = []
        super().__init__(str(path), EngineHandler)


class EngineHandler(BaseHTTPRequestHandler):
    server: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "engine-client"

    def do_GET(self) -> None:
        self.server.received.append(("GET", self.path, None))
        self._answer(200, b"OK", "text/plain")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(("POST", self.path, json.loads(raw) if raw else None))
        self._answer(201, json.dumps({"Id": "c0ffee", "Warnings": []}).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    server = Engine(tmp_path / "engine.sock")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(tmp_path: Path, engine: Engine) -> Iterator[httpx.Client]:
    listen = tmp_path / "proxy.sock"
    command = [sys.executable, str(PROXY), "--listen", str(listen)]
    command += ["--mount", str(tmp_path / "audit"), "--engine", str(engine.server_address)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not listen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(listen)), base_url="http://docker"
    ) as c:
        yield c
    process.terminate()
    process.wait(timeout=10)


def test_container_create_reaches_the_engine_with_mount_and_host_network(
    proxy: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    body = {
        "Image": "chatfunction:rapid-x86_64",
        "Entrypoint": [
            "/var/rapid/aws-lambda-rie",
            "--log-level",
            "error",
            "/lambda-entrypoint.sh",
        ],
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5123"}]}},
    }

    response = proxy.post("/v1.41/containers/create?name=x", json=body)

    assert response.status_code == 201
    assert response.json()["Id"] == "c0ffee"
    method, path, sent = engine.received[-1]
    assert (method, path) == ("POST", "/v1.41/containers/create?name=x")
    assert sent is not None
    audit = str(tmp_path / "audit")
    assert sent["HostConfig"]["Binds"] == [f"{audit}:{audit}"]
    assert sent["HostConfig"]["NetworkMode"] == "host"
    assert sent["Entrypoint"][1:3] == ["--runtime-interface-emulator-address", "127.0.0.1:5123"]


def test_other_calls_pass_through_unchanged_one_after_another(
    proxy: httpx.Client, engine: Engine
) -> None:
    first = proxy.get("/_ping")
    second = proxy.post("/v1.41/containers/c0ffee/start", json={"Detach": True})

    assert (first.status_code, first.text) == (200, "OK")
    assert second.status_code == 201
    assert engine.received == [
        ("GET", "/_ping", None),
        ("POST", "/v1.41/containers/c0ffee/start", {"Detach": True}),
    ]
