"""The HTTP/1.1 transport under the Ollama client, against small servers on loopback that do
what real servers do to a client: keep connections, close them, stall, hang up, speak TLS."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simpleai.runtime import tls_context
from simpleai.transport import Http11Transport, Timeouts, UpstreamResponse
from tests.support.tls import self_signed, trusting

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUTS = Timeouts(connect=2.0, read=2.0, write=2.0)


class Server:
    """An asyncio server on a free loopback port that counts the connections it accepts."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and body (Content-Length bodies only), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def answer(body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(header + b"\r\n" for header in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), headers, body)


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await read_request(reader) is not None:
        writer.write(answer(b'{"ok": true}'))
        await writer.drain()


async def start(transport: Http11Transport, timeouts: Timeouts = TIMEOUTS) -> UpstreamResponse:
    """A POST sent and its answer's head received; the body is left to the caller."""
    return await transport.request("POST", "/api/chat", b"{}", timeouts)


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


async def send(transport: Http11Transport) -> Answer:
    response = await start(transport)
    content = await response.read()
    headers = {name.lower(): value for name, value in response.headers}
    return Answer(response.status, headers, content)


async def serving(handler: Handler) -> tuple[Server, Http11Transport]:
    """A server answering with `handler`, and a transport to it."""
    server = Server(handler)
    return server, Http11Transport(await server.start())


def test_one_connection_serves_request_after_request() -> None:
    async def scenario() -> None:
        server, transport = await serving(keep_answering)
        for _ in range(3):
            response = await send(transport)
            assert (response.status, response.json()) == (200, {"ok": True})
        assert server.connections == 1
        await transport.aclose()

    asyncio.run(scenario())


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()  # then hang up, as a server's idle timeout does

    async def scenario() -> None:
        server, transport = await serving(answer_once)
        await send(transport)
        await asyncio.sleep(0.05)
        response = await send(transport)
        assert response.status == 200
        assert server.connections == 2

    asyncio.run(scenario())


def test_a_close_that_arrived_while_the_loop_was_not_running_is_noticed() -> None:
    """As in a Lambda frozen between invocations: the server's FIN is in the socket, but the
    event loop has not run since, so only asking the socket tells."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    close_now, hung_up = threading.Event(), threading.Event()
    accepted: list[int] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            accepted.append(1)
            with conn:
                conn.recv(65536)
                conn.sendall(answer(b"{}"))
                if len(accepted) == 1:
                    close_now.wait(5)
                    conn.shutdown(socket.SHUT_WR)
                    hung_up.set()

    threading.Thread(target=serve, daemon=True).start()
    loop = asyncio.new_event_loop()
    try:
        transport = Http11Transport(url)
        loop.run_until_complete(send(transport))
        close_now.set()
        assert hung_up.wait(5)
        time.sleep(0.05)  # the FIN is delivered; the loop is not running to see it
        response = loop.run_until_complete(send(transport))
        assert response.status == 200
        assert len(accepted) == 2
    finally:
        loop.close()
        listener.close()


def test_connection_close_in_an_answer_is_honoured() -> None:
    async def answer_closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(answer(b"{}", b"Connection: close"))
            await writer.drain()

    async def scenario() -> None:
        server, transport = await serving(answer_closing)
        await send(transport)
        await send(transport)
        assert server.connections == 2

    asyncio.run(scenario())


def test_a_chunked_body_arrives_chunk_by_chunk_and_the_connection_is_kept() -> None:
    release = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b'8\r\n{"a":1}\n\r\n')
            await writer.drain()
            await release.wait()
            writer.write(b'8\r\n{"b":2}\n\r\n0\r\n\r\n')
            await writer.drain()

    async def scenario() -> None:
        server, transport = await serving(stream)
        response = await start(transport)
        chunks = aiter(response.body)
        assert await anext(chunks) == b'{"a":1}\n'  # before the server sends the rest
        release.set()
        assert [chunk async for chunk in chunks] == [b'{"b":2}\n']
        await response.aclose()
        await send(transport)  # the same connection: the body was read to its end
        assert server.connections == 1

    asyncio.run(scenario())


def test_a_body_left_unread_closes_its_connection() -> None:
    async def scenario() -> None:
        server, transport = await serving(keep_answering)
        response = await start(transport)
        await response.aclose()
        await send(transport)
        assert server.connections == 2

    asyncio.run(scenario())


def test_failures_are_httpx_exceptions() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def scenario() -> None:
        refusing = Server(keep_answering)
        url = await refusing.start()
        assert refusing.server is not None
        refusing.server.close()
        await refusing.server.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await send(Http11Transport(url))

        url = await Server(hang_up).start()
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await send(Http11Transport(url))

        url = await Server(stall).start()
        with pytest.raises(httpx.ReadTimeout):
            await start(Http11Transport(url), Timeouts(connect=2.0, read=0.1, write=2.0))

    asyncio.run(scenario())


def test_a_request_http_cannot_carry_is_an_httpx_error_and_sends_nothing() -> None:
    async def scenario() -> None:
        server = Server(keep_answering)
        url = await server.start()
        transport = Http11Transport(url, headers={"Authorization": "Bearer x\r\nX-Injected: 1"})
        with pytest.raises(httpx.LocalProtocolError) as refused:
            await transport.request("GET", "/api/tags", None, TIMEOUTS)
        assert "authorization" in str(refused.value).lower()
        assert "Bearer" not in str(refused.value)  # a credential is named, never shown
        assert server.connections == 0

    asyncio.run(scenario())


def test_the_request_goes_out_framed_by_its_body() -> None:
    """One head and body, after the origin's headers; the transport writes Content-Length
    from the body it sends, whatever framing headers it was given, and asks for no encoding."""
    received: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            received.append(request)
            writer.write(answer(b"{}"))
            await writer.drain()

    async def scenario() -> None:
        server = Server(record)
        url = await server.start()
        transport = Http11Transport(
            url + "/my ollama/",
            headers={
                "X-Extra": "yes",
                "Content-Length": "999",
                "Transfer-Encoding": "chunked",
                "Accept-Encoding": "gzip",
            },
        )
        await (await transport.request("POST", "/api/chat?x=1", b'{"model":"m"}', TIMEOUTS)).read()

    asyncio.run(scenario())
    head, _, body = received[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /my%20ollama/api/chat?x=1 HTTP/1.1"
    headers = [line.lower() for line in lines[1:]]
    assert b"x-extra: yes" in headers
    assert b"host: 127.0.0.1:" in b"\n".join(headers)
    assert [h for h in headers if h.startswith((b"content-length", b"transfer-encoding"))] == [
        b"content-length: 13"
    ]
    assert [h for h in headers if h.startswith(b"accept-encoding")] == [
        b"accept-encoding: identity"
    ]
    assert b"content-type: application/json" in headers
    assert body == b'{"model":"m"}'


def test_an_answer_after_informational_ones_with_a_body_up_to_the_close() -> None:
    async def old_style(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        writer.write(b'{"ok": ')
        await writer.drain()
        writer.write(b"true}")  # no length, no chunks: the body ends where the server closes

    async def scenario() -> None:
        server, transport = await serving(old_style)
        response = await send(transport)
        assert (response.status, response.json()) == (200, {"ok": True})
        assert response.headers[b"content-type"] == b"application/json"
        assert b"link" not in response.headers  # an informational answer's headers are its own
        await send(transport)  # a connection ended by its answer is not reused
        assert server.connections == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("wire", "complaint"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "before the body ended"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "before the body"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}", "encoded"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "not HTTP/1.1"),
    ],
)
def test_an_answer_cut_short_or_not_http_is_a_protocol_error(wire: bytes, complaint: str) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(wire)
        await writer.drain()

    async def scenario() -> None:
        url = await Server(broken).start()
        with pytest.raises(httpx.RemoteProtocolError, match=complaint):
            await send(Http11Transport(url))

    asyncio.run(scenario())


def test_a_head_answer_ends_with_its_head() -> None:
    """Its Content-Length describes the body a GET would get: none follows, and the parser
    cannot know that, so the connection is not used again."""

    async def head_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            await writer.drain()

    async def scenario() -> None:
        server, transport = await serving(head_answers)
        for _ in range(2):
            response = await transport.request("HEAD", "/api/tags", None, TIMEOUTS)
            assert (response.status, await response.read()) == (200, b"")
        assert server.connections == 2

    asyncio.run(scenario())


def test_bytes_after_a_whole_answer_keep_its_connection_from_reuse() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(answer(b"{}") + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def scenario() -> None:
        server, transport = await serving(chatty)
        assert (await send(transport)).content == b"{}"
        assert (await send(transport)).content == b"{}"
        assert server.connections == 2

    asyncio.run(scenario())


def test_https_is_spoken_and_the_certificate_checked(tmp_path: Path) -> None:
    certified = self_signed(tmp_path)

    async def scenario() -> None:
        server = Server(keep_answering)
        url = await server.start(certified.server)
        response = await send(Http11Transport(url, ssl_context=certified.client()))
        assert response.json() == {"ok": True}
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know this one
            await send(Http11Transport(url, ssl_context=ssl.create_default_context()))

    asyncio.run(scenario())


def test_an_ollama_behind_an_internal_ca_is_trusted_once_ssl_cert_file_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The context the gateway gives its Ollama transport (runtime.tls_context), and the one a
    transport built without a context falls back to, are the same: certifi's bundle unless
    SSL_CERT_FILE names other CAs."""
    certified = self_signed(tmp_path)

    async def scenario() -> None:
        server = Server(keep_answering)
        url = await server.start(certified.server)

        trusting(monkeypatch, None)
        for refused in (Http11Transport(url, ssl_context=tls_context(url)), Http11Transport(url)):
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await send(refused)

        trusting(monkeypatch, certified.ca_file)
        for trusted in (Http11Transport(url, ssl_context=tls_context(url)), Http11Transport(url)):
            assert (await send(trusted)).json() == {"ok": True}

        trusting(monkeypatch, tmp_path / "missing.pem")
        with pytest.raises(httpx.ConnectError, match=r"SSL_CERT_FILE=.*missing\.pem"):
            await send(Http11Transport(url))

    asyncio.run(scenario())
