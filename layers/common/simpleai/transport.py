"""The httpx transport under the Ollama client: HTTP/1.1 to one origin over asyncio streams.

httpx's default transport (httpcore over anyio) spent about 1.2 ms of CPU on each call to Ollama
on loopback, several times what the exchange itself needs: a connection pool built for many
origins and HTTP/2, anyio cancel scopes around every read and write, and two socket writes per
request. The gateway talks to one origin, one request per connection at a time. This transport
keeps what that needs and nothing else:

- the request head is written here (header names and values checked, `Content-Length` set from
  the body) and leaves in one write with the body;
- responses are parsed by httptools (llhttp, the parser of Node.js, as uvicorn uses it): sized,
  chunked and close-delimited bodies, informational answers skipped, keep-alive as the answer
  allows. h11, which did this before, cost about 0.1 ms a call in pure Python;
- idle connections are kept for reuse (at most `max_idle`, each for `keepalive_expiry` seconds)
  and dropped when the server has closed them;
- the per-request timeouts httpx puts in `request.extensions["timeout"]` (connect, read, write)
  are honoured with `asyncio.timeout`, and failures raise httpx's own exceptions
  (`ConnectError`, `ReadTimeout`, `RemoteProtocolError`, ...), so retries and error mapping above
  it work as with httpx's transport.

A transport belongs to the event loop its connections were made on, like httpx's.
"""

from __future__ import annotations

import asyncio
import re
import select
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httptools
import httpx

READ_SIZE = 64 * 1024

# RFC 9110: a method and a header name are tokens; a header value holds no CR, LF, NUL or other
# control but tab; a request target no whitespace or control.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_TARGET = re.compile(rb"[\x21-\x7e\x80-\xff]+")
# Framing headers are this transport's to write, from the body it sends.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_BODILESS = frozenset({204, 304})


class Http11Transport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 8,
        keepalive_expiry: float = 60.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        message = _message(request, await request.aread())
        connection = await self._connection(request.url, timeouts.get("connect"))
        try:
            async with _limit(timeouts.get("write"), httpx.WriteTimeout, httpx.WriteError):
                connection.writer.write(message)
                await connection.writer.drain()
            response = await connection.response_head(
                timeouts.get("read"), head_only=request.method == "HEAD"
            )
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _connection(self, url: httpx.URL, connect_timeout: float | None) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        secure = url.scheme == "https"
        if secure and self._ssl_context is None:
            # Built once, on the first https connection: loading the CA bundle takes 40-120 ms.
            self._ssl_context = ssl.create_default_context()
        host = url.host
        port = url.port or (443 if secure else 80)
        async with _limit(connect_timeout, httpx.ConnectTimeout, httpx.ConnectError):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=self._ssl_context if secure else None,
                server_hostname=host if secure else None,
                limit=READ_SIZE,
            )
        return _Connection(reader, writer)

    def _release(self, connection: _Connection) -> None:
        """Back to the pool after a whole response the server will take another request after."""
        response, connection.response = connection.response, None
        if response is not None and response.keep_alive and len(self._idle) < self._max_idle:
            connection.expires = time.monotonic() + self._keepalive_expiry
            self._idle.append(connection)
            return
        connection.close()


def _message(request: httpx.Request, body: bytes) -> bytes:
    """The request's head and body as they go on the wire; `LocalProtocolError` (and nothing
    sent) for a method, target or header HTTP cannot carry. The error names the header but not
    its value, which may be a credential."""
    method = request.method.encode("ascii")
    target = request.url.raw_path
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise httpx.LocalProtocolError(f"{request.method} {target!r} is not a valid request line.")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"{name!r} is not a valid header name.")
        if not _FIELD_VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"The value of header {name!r} cannot be sent.")
        if name.lower() not in _FRAMING:
            lines += (name, b": ", value, b"\r\n")
    if body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: %d\r\n" % len(body))
    lines += (b"\r\n", body)
    return b"".join(lines)


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
        return response

    async def receive(self, response: _Response, read_timeout: float | None) -> None:
        """One read from the socket, handed to the parser."""
        async with _limit(read_timeout, httpx.ReadTimeout, httpx.ReadError):
            data = await self.reader.read(READ_SIZE)
        if data:
            response.feed(data)
        else:
            response.closed()

    def close(self) -> None:
        self.writer.close()


class _Body(httpx.AsyncByteStream):
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


@asynccontextmanager
async def _limit(
    seconds: float | None,
    on_timeout: type[httpx.TimeoutException],
    on_error: type[httpx.TransportError],
) -> AsyncIterator[None]:
    """`seconds` at most (None: no limit), with timeouts and socket errors as httpx's."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise on_timeout("Timed out talking to Ollama.") from exc
    except (OSError, EOFError) as exc:
        raise on_error(f"{type(exc).__name__}: {exc}") from exc
