"""How the gateway fetches the identity provider's documents (runtime.JsonFetcher over
auth/fetch.py): against small HTTP/1.1 servers on loopback that keep connections, close them,
refuse, fail, or act as the proxy the environment names."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from simpleai.runtime import JsonFetcher
from tests.support.tls import self_signed, trusting


class Documents(ThreadingHTTPServer):
    """Answers every GET with {"path": <the request target>}; counts connections and keeps
    the request lines it saw."""

    daemon_threads = True

    def __init__(
        self,
        *,
        close_after_each: bool = False,
        status: int = 200,
        gzip_if_asked: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connections = 0
        self.request_lines: list[str] = []
        self.close_after_each = close_after_each
        self.status = status
        self.gzip_if_asked = gzip_if_asked
        self.compressed = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                server.request_lines.append(self.requestline)
                body = json.dumps({"path": self.path}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                if server.gzip_if_asked and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                    server.compressed += 1
                self.send_header("Content-Length", str(len(body)))
                if server.close_after_each:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(autouse=True)
def no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These servers are reached directly unless a test names a proxy itself."""
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)


@pytest.fixture
def documents() -> Iterator[Documents]:
    server = Documents()
    yield server
    server.shutdown()
    server.server_close()


def test_discovery_and_keys_share_one_connection(documents: Documents) -> None:
    fetch = JsonFetcher()

    first = fetch(documents.url + "/.well-known/openid-configuration")
    second = fetch(documents.url + "/jwks?v=2")

    assert first == {"path": "/.well-known/openid-configuration"}
    assert second == {"path": "/jwks?v=2"}
    assert documents.connections == 1


def test_a_connection_the_provider_closed_is_replaced_without_an_error() -> None:
    server = Documents(close_after_each=True)
    try:
        fetch = JsonFetcher()
        assert fetch(server.url + "/a") == {"path": "/a"}
        assert fetch(server.url + "/b") == {"path": "/b"}
        assert server.connections == 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_kept_connection_that_died_while_idle_is_retried_once(documents: Documents) -> None:
    fetch = JsonFetcher()
    fetch(documents.url + "/a")
    # The provider drops idle connections (as it does long before the next key refresh):
    # simulated by closing the transport's kept socket under it.
    client = fetch._client(documents.url)
    transport = client._transport
    for connection in transport._idle.values():  # type: ignore[attr-defined]
        assert connection.sock is not None
        connection.sock.close()

    assert fetch(documents.url + "/b") == {"path": "/b"}
    assert documents.connections == 2


def test_a_compressed_document_is_read_as_json() -> None:
    """Identity providers compress their documents when the client accepts it."""
    server = Documents(gzip_if_asked=True)
    try:
        assert JsonFetcher()(server.url + "/jwks") == {"path": "/jwks"}
        assert server.compressed == 1
    finally:
        server.shutdown()
        server.server_close()


def test_an_error_status_and_a_refused_connection_are_oserrors() -> None:
    failing = Documents(status=503)
    try:
        with pytest.raises(OSError, match="HTTPStatusError"):
            JsonFetcher()(failing.url + "/jwks")
    finally:
        failing.shutdown()
        failing.server_close()
    closed = Documents()
    url = closed.url
    closed.shutdown()
    closed.server_close()
    with pytest.raises(OSError, match="ConnectError"):
        JsonFetcher()(url + "/jwks")


def test_the_proxy_the_environment_names_is_used(
    documents: Documents, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN HTTP_PROXY naming a proxy (here a server that answers what it is sent)
    monkeypatch.setenv("HTTP_PROXY", documents.url)

    # WHEN a document of an otherwise unreachable host is fetched
    answer = JsonFetcher()("http://idp.invalid/jwks")

    # THEN the request went to the proxy, in the absolute form a proxy is sent
    assert answer == {"path": "http://idp.invalid/jwks"}
    assert documents.request_lines == ["GET http://idp.invalid/jwks HTTP/1.1"]


def test_a_provider_behind_an_internal_ca_is_trusted_once_ssl_cert_file_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certified = self_signed(tmp_path)
    provider = Documents(tls=certified.server)
    try:
        trusting(monkeypatch, None)  # certifi's bundle does not know this CA
        with pytest.raises(
            OSError, match=r"GET https://.* failed: ConnectError: .*CERTIFICATE_VERIFY"
        ):
            JsonFetcher()(provider.url + "/jwks")

        trusting(monkeypatch, certified.ca_file)
        assert JsonFetcher()(provider.url + "/jwks") == {"path": "/jwks"}
    finally:
        provider.shutdown()
