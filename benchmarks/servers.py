"""The servers a benchmark run talks to: a real OIDC provider (in this process), the Ollama
stand-in, the local API and the chat app under uvicorn (each a child process of its own, so the
client in this process does not share their interpreter lock).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Importing oidc-provider-mock prints authlib's deprecation warning (authlib forces its warnings
# to "always", so a filter cannot hold it back); it is theirs, not ours.
with contextlib.redirect_stderr(io.StringIO()):
    from tests.support.oidc import running_provider

ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "simpleai-android"
USERS = {"alice": {"email": "alice@example.com", "name": "Alice"}}
START_TIMEOUT_SECONDS = 30.0
# Only these pass from our environment to the children, so a stray setting cannot skew a run.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Child:
    """A server in a child process, its output kept in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def child_server(
    name: str, args: list[str], *, port: int, env: Mapping[str, str], logs: Path
) -> Iterator[Child]:
    """Run `python ARGS` from the repository root and wait until it accepts connections."""
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    child = Child(name, process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_listening(child, port)
        yield child
    finally:
        child.stop()


def _wait_until_listening(child: Child, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited at start:\n{child.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{child.name} did not listen within {START_TIMEOUT_SECONDS:.0f} s")


@dataclass
class Setup:
    """What every measurement shares: the OIDC provider, a token, the Ollama stand-in."""

    issuer: str
    token: str
    ollama_url: str
    workdir: Path

    def gateway_env(self, database: Path, **extra: str) -> dict[str, str]:
        """The environment of a gateway process: auth, translation and audit all on."""
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env.update(
            OIDC_ISSUER=self.issuer,
            OIDC_AUDIENCE=AUDIENCE,
            OLLAMA_BASE_URL=self.ollama_url,
            OLLAMA_TIMEOUT_SECONDS="10",
            DATABASE_URL=f"sqlite:{database}",
            POWERTOOLS_METRICS_NAMESPACE="SimpleAIGatewayBench",
        )
        env.update(extra)
        return env

    def local_api(
        self, database: Path, *, workers: int = 8, **extra_env: str
    ) -> contextlib.AbstractContextManager[Child]:
        port = free_port()
        return child_server(
            "localapi",
            ["-m", "localapi", "--port", str(port), "--workers", str(workers)],
            port=port,
            env=self.gateway_env(database, **extra_env),
            logs=self.workdir,
        )

    def chat_under_uvicorn(self, database: Path) -> contextlib.AbstractContextManager[Child]:
        port = free_port()
        return child_server(
            "uvicorn-chat",
            [
                "-m",
                "uvicorn",
                "app:app",
                "--app-dir",
                str(ROOT / "functions" / "chat"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            port=port,
            env=self.gateway_env(database),
            logs=self.workdir,
        )


@contextlib.contextmanager
def setup(workdir: Path) -> Iterator[Setup]:
    port = free_port()
    with (
        running_provider(USERS) as provider,
        child_server(
            "fake-ollama",
            ["-m", "tests.support.fake_ollama", "--port", str(port)],
            port=port,
            env={name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
            logs=workdir,
        ) as ollama,
    ):
        yield Setup(
            issuer=provider.issuer,
            token=provider.id_token("alice", client_id=AUDIENCE),
            ollama_url=ollama.url,
            workdir=workdir,
        )
