"""The transport under the Ollama client: HTTP/1.1 to one origin over asyncio streams.

httpx's default transport (httpcore over anyio) spent about 1.2 ms of CPU on each call to Ollama
on loopback, several times what the exchange itself needs: a connection pool built for many
origins and HTTP/2, anyio cancel scopes around every read and write, two socket writes per
request, and httpx's request and response models around it all. The gateway talks to one
origin, one request per connection at a time. This transport keeps what that needs:

- the request head is written here: the origin's headers (`Host`, the client's own, each name
  and value checked) are framed once, so a request adds only its line, `Content-Length` and
  body, and leaves in one write;
- answers are parsed by httptools (llhttp, the parser of Node.js, as uvicorn uses it): sized,
  chunked and close-delimited bodies, informational answers skipped, keep-alive as the answer
  allows. No content coding is asked for, and an encoded answer is refused;
- idle connections are kept for reuse (at most `max_idle`, each for `keepalive_expiry` seconds)
  and dropped when the server has closed them;
- connect, read and write timeouts are honoured with `asyncio.timeout`, and failures raise
  httpx's exceptions (`ConnectError`, `ReadTimeout`, `RemoteProtocolError`, ...), the one
  vocabulary retries and error mapping above it speak (httpx still fetches the JWKS).

A transport belongs to the event loop its connections were made on.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit

import httptools
import httpx

from simpleai.tls import verifying_context

READ_SIZE = 64 * 1024

# RFC 9110: a method and a header name are tokens; a header value holds no CR, LF, NUL or other
# control but tab; a request target no whitespace or control.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_TARGET = re.compile(rb"[\x21-\x7e\x80-\xff]+")
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# Headers only this transport writes: framing follows the body it sends, and it decodes no
# content coding.
_OWN = _FRAMING | {b"accept-encoding"}
_BODILESS = frozenset({204, 304})

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens a new connection to the origin; the default dials its host and port (with TLS for
https). The benchmarks pass one that answers in-process."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds each step of a request may take; None: no limit."""

    connect: float | None = None
    read: float | None = None
    write: float | None = None

    def at_most(self, seconds: float) -> Timeouts:
        """Each limit cut to `seconds` (a request's remaining time)."""

        def cut(limit: float | None) -> float:
            return seconds if limit is None else min(limit, seconds)

        return Timeouts(cut(self.connect), cut(self.read), cut(self.write))


class Body(Protocol):
    """A response body: its chunks as they arrive, and a way to give it up."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: Body
    reason: str = ""

    async def read(self) -> bytes:
        """The whole body; the connection is then free for the next request."""
        try:
            return b"".join([chunk async for chunk in self.body])
        finally:
            await self.body.aclose()

    async def aclose(self) -> None:
        await self.body.aclose()


class Transport(Protocol):
    """What the Ollama client sends through: this module's transport, or one wrapping it."""

    async def request(
        self, method: str, path: str, body: bytes | None, timeouts: Timeouts
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class Http11Transport:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 8,
        keepalive_expiry: float = 60.0,
        connect: Connect | None = None,
    ) -> None:
        url = urlsplit(base_url)
        self._secure = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._secure else 80)
        # A proxy's path prefix, percent-encoded as a request target must be.
        self._base_path = quote(url.path.rstrip("/"), safe="/%:@!$&'()*+,;=~").encode("ascii")
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._connect = connect or self._dial
        self._idle: list[_Connection] = []
        host = f"[{self._host}]" if ":" in self._host else self._host
        if url.port is not None:
            host += f":{url.port}"
        self._refusal: str | None = None
        self._origin_headers = b""
        try:
            self._origin_headers = b"Accept-Encoding: identity\r\n" + _header_lines(
                {"Host": host, **(headers or {})}
            )
        except httpx.LocalProtocolError as exc:
            self._refusal = str(exc)  # raised by every request, like any transport failure

    async def request(
        self, method: str, path: str, body: bytes | None, timeouts: Timeouts
    ) -> UpstreamResponse:
        message = self._message(method, path, body)
        connection = await self._connection(timeouts.connect)
        try:
            await connection.send(message, timeouts.write)
            head = await connection.response_head(timeouts.read, head_only=method == "HEAD")
        except BaseException:
            connection.close()
            raise
        return UpstreamResponse(
            head.status,
            head.headers,
            _Body(self, connection, timeouts.read),
            head.reason.decode("latin-1"),
        )

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _message(self, method: str, path: str, body: bytes | None) -> bytes:
        """The request's head and body as they go on the wire; `LocalProtocolError` (and
        nothing sent) for a method, target or header HTTP cannot carry."""
        if self._refusal is not None:
            raise httpx.LocalProtocolError(self._refusal)
        verb = method.encode("ascii")
        target = self._base_path + path.encode("ascii")
        if not _TOKEN.fullmatch(verb) or not _TARGET.fullmatch(target):
            raise httpx.LocalProtocolError(f"{method} {target!r} is not a valid request line.")
        framing = b""
        if body is not None:
            framing = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        line = b"%s %s HTTP/1.1\r\n" % (verb, target)
        return b"".join((line, self._origin_headers, framing, b"\r\n", body or b""))

    async def _connection(self, connect_timeout: float | None) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await self._connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("Timed out connecting to Ollama.") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Connection(reader, writer)

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            self._host,
            self._port,
            ssl=(self._ssl_context or verifying_context()) if self._secure else None,
            server_hostname=self._host if self._secure else None,
            limit=READ_SIZE,
        )

    def _release(self, connection: _Connection) -> None:
        """Back to the pool after a whole response the server will take another request after."""
        response, connection.response = connection.response, None
        if response is not None and response.keep_alive and len(self._idle) < self._max_idle:
            connection.expires = time.monotonic() + self._keepalive_expiry
            self._idle.append(connection)
            return
        connection.close()


def _header_lines(headers: Mapping[str, str]) -> bytes:
    """`Name: value` lines, each checked, a later name replacing an earlier one whatever its
    case. The error names a header but never shows its value, which may be a credential."""
    lines: dict[bytes, bytes] = {}
    for name, value in headers.items():
        raw_name = name.encode("latin-1", "replace")
        raw_value = value.encode("utf-8")
        if not _TOKEN.fullmatch(raw_name):
            raise httpx.LocalProtocolError(f"{name!r} is not a valid header name.")
        if not _FIELD_VALUE.fullmatch(raw_value):
            raise httpx.LocalProtocolError(f"The value of header {name!r} cannot be sent.")
        if raw_name.lower() not in _OWN:
            lines[raw_name.lower()] = raw_name + b": " + raw_value + b"\r\n"
    return b"".join(lines.values())


class _Response:
    """What the parser has found of one response so far (httptools calls these methods)."""

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False

    def on_message_begin(self) -> None:
        if self.complete:  # more after a whole answer: the connection is out of step
            self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an informational answer: the real one follows
            self.reason = b""
            self.headers = []
            return
        self.status = status
        self.head_done = True
        if self.head_only:  # the parser cannot know a HEAD answer has no body: close after it
            self.complete = True
            return
        framed = any(name.lower() in _FRAMING for name, _ in self.headers)
        self.until_close = not framed and status not in _BODILESS

    def on_body(self, data: bytes) -> None:
        if not self.complete:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise httpx.RemoteProtocolError(f"Ollama's answer is not HTTP/1.1: {exc}") from exc
            self.keep_alive = False

    def closed(self) -> None:
        """The server closed the connection: the end of a close-delimited body, else an error."""
        if not self.head_done:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if not self.complete:
            if not self.until_close:
                raise httpx.RemoteProtocolError("Server disconnected before the body ended.")
            self.complete = True
        self.keep_alive = False


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.response: _Response | None = None
        self.expires = 0.0

    def reusable(self, now: float) -> bool:
        """Not expired, and nothing arrived while idle: an EOF (or stray bytes) there means the
        server closed it, and a request sent on it would be lost. The socket itself is asked,
        since the event loop may not have run since the close arrived (a Lambda thawing)."""
        if now >= self.expires or self.writer.is_closing() or self.reader.at_eof():
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable

    async def response_head(self, read_timeout: float | None, *, head_only: bool) -> _Response:
        response = self.response = _Response(head_only)
        while not response.head_done:
            await self.receive(response, read_timeout)
        for name, value in response.headers:
            if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
                raise httpx.RemoteProtocolError(
                    "Ollama's answer is content-encoded; none was asked for."
                )
        return response

    async def send(self, message: bytes, write_timeout: float | None) -> None:
        """Into the socket; the write timeout only matters once the kernel's buffer is full,
        so it is armed only then."""
        try:
            self.writer.write(message)
            if self.writer.transport.get_write_buffer_size():
                async with asyncio.timeout(write_timeout):
                    await self.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("Timed out writing to Ollama.") from exc
        except OSError as exc:
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from exc

    async def receive(self, response: _Response, read_timeout: float | None) -> None:
        """One read from the socket, handed to the parser."""
        try:
            async with asyncio.timeout(read_timeout):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("Timed out reading from Ollama.") from exc
        except OSError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
        if data:
            response.feed(data)
        else:
            response.closed()

    def close(self) -> None:
        self.writer.close()


class _Body:
    """The response body as it arrives; the connection goes back to the pool at its end."""

    def __init__(
        self, transport: Http11Transport, connection: _Connection, read_timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None or connection.response is None:
            return
        response = connection.response
        while True:
            if response.body:
                data = b"".join(response.body)
                response.body.clear()
                yield data
            if response.complete:
                self._connection = None
                self._transport._release(connection)
                return
            await connection.receive(response, self._read_timeout)

    async def aclose(self) -> None:
        """A body left unread (or broken off) leaves the connection unusable: close it."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
