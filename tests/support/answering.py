"""An Ollama that answers at once, in the caller's own event loop: a `Connect` for the Ollama
transport (`runtime.configure(ollama_connect=...)`) whose far end is the other half of a socket
pair, served by a protocol on the same loop. Everything of the gateway's above the socket runs
as in production; only the server's work and the network are left out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from simpleai.transport import READ_SIZE, Connect


def http_answer(body: bytes, *, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer with a JSON body, as Ollama frames one."""
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (status.encode(), len(body), body)
    )


class _Answering(asyncio.Protocol):
    def __init__(self, answer: Callable[[bytes], bytes], seen: list[bytes]) -> None:
        self._answer = answer
        self._seen = seen
        self._buffer = bytearray()  # grown in place: a large request arrives in many reads
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self._buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            size = end + 4 + length
            if len(self._buffer) < size:
                return
            request = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._seen.append(request)
            assert self._transport is not None
            self._transport.write(self._answer(request))


def answering(answer: bytes | Callable[[bytes], bytes]) -> tuple[Connect, list[bytes]]:
    """A `Connect` whose connections are answered with `answer` (bytes, or made from each
    request's bytes), and the list each request's bytes are appended to."""
    seen: list[bytes] = []
    make = answer if callable(answer) else (lambda _request: answer)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: _Answering(make, seen), theirs)
        return await asyncio.open_connection(sock=ours, limit=READ_SIZE)

    return connect, seen
