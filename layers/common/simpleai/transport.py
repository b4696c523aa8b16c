"""The httpx transport under the Ollama client: HTTP/1.1 to one origin over asyncio streams.

httpx's default transport (httpcore over anyio) spent about 0.8 ms of CPU on each call to Ollama
on loopback, several times what the exchange itself needs: a connection pool built for many
origins and HTTP/2, anyio cancel scopes around every read and write, and two socket writes per
request. The gateway talks to one origin, one request per connection at a time. This transport
keeps what that needs and nothing else:

- h11 (httpcore's own HTTP/1.1 state machine) frames requests and parses responses: chunked or
  sized bodies, keep-alive, `Connection: close`;
- the request head and body leave in one write;
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
import select
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h11
import httpx

READ_SIZE = 64 * 1024


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
        body = await request.aread()
        connection = await self._connection(request.url, timeouts.get("connect"))
        try:
            try:
                head = connection.h11.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
                if body:
                    head += connection.h11.send(h11.Data(data=body))
                head += connection.h11.send(h11.EndOfMessage())
            except h11.LocalProtocolError as exc:  # a header HTTP cannot carry, say
                raise httpx.LocalProtocolError(str(exc)) from exc
            async with _limit(timeouts.get("write"), httpx.WriteTimeout, httpx.WriteError):
                connection.writer.write(head)
                await connection.writer.drain()
            response = await connection.next_event(timeouts.get("read"))
            while isinstance(response, h11.InformationalResponse):
                response = await connection.next_event(timeouts.get("read"))
        except BaseException:
            connection.close()
            raise
        if not isinstance(response, h11.Response):  # pragma: no cover - h11 yields nothing else
            connection.close()
            raise httpx.RemoteProtocolError(f"Unexpected {type(response).__name__} from Ollama.")
        return httpx.Response(
            response.status_code,
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
        """Back to the pool after a whole response, if both sides allow another request."""
        if connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
            connection.h11.start_next_cycle()
            connection.expires = time.monotonic() + self._keepalive_expiry
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)
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

    async def next_event(self, read_timeout: float | None) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            async with _limit(read_timeout, httpx.ReadTimeout, httpx.ReadError):
                data = await self.reader.read(READ_SIZE)
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            self.h11.receive_data(data)

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
        if connection is None:
            return
        while True:
            event = await connection.next_event(self._read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._connection = None
                self._transport._release(connection)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._connection = None
                connection.close()
                return

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
