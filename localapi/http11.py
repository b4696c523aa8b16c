"""HTTP/1.1 for one worker of the local API: a selector loop over the shared listening socket and
the connections this worker accepted, parsed and framed by h11, each request answered inline.

A worker plays one warm Lambda container: it runs one invocation at a time, on its own thread, so
the handler is called where the request was read, with no hop to another thread or process and
back. Several workers (threads or processes) share the listening socket; whichever is idle
accepts the next connection, and each keeps the connections it accepted (keep-alive).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from urllib.parse import unquote

import h11

from localapi.events import HttpRequest, HttpResponse, gateway_error

log = logging.getLogger("localapi")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP APIs refuse larger payloads
IDLE_TIMEOUT_SECONDS = 30.0
"""A connection with no traffic for this long is closed (idle keep-alive, or a stalled request)."""
SEND_TIMEOUT_SECONDS = 30.0
READ_SIZE = 64 * 1024
# Set by the server from the handler's answer or by us; never passed through from a handler.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})

Dispatch = Callable[[HttpRequest], tuple[HttpResponse, str]]
"""A complete request -> its response and the name of what answered it (for the access log)."""


class _Date:
    """The `Date` header, formatted once a second rather than per response."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


class _Client:
    """One accepted connection and the request being read on it."""

    __slots__ = ("body", "conn", "draining", "last_active", "peer", "request", "size", "sock")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self.last_active = time.monotonic()
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.draining = False
        """Refused and half-closed: what the client still sends is read and dropped until it
        closes, so that it reads our answer rather than a reset."""


class Worker:
    """Serves connections from `listener` until `stop_fd` becomes readable (or reaches EOF)."""

    def __init__(self, listener: socket.socket, dispatch: Dispatch, stop_fd: int) -> None:
        self._listener = listener
        self._dispatch = dispatch
        self._stop_fd = stop_fd
        self._selector = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        self._date = _Date()

    def serve(self) -> None:
        selector = self._selector
        selector.register(self._listener, selectors.EVENT_READ, "listener")
        selector.register(self._stop_fd, selectors.EVENT_READ, "stop")
        try:
            while True:
                for key, _mask in selector.select(timeout=IDLE_TIMEOUT_SECONDS / 4):
                    if key.data == "stop":
                        return
                    if key.data == "listener":
                        self._accept()
                    elif not self._on_readable(key.data):
                        self._close(key.data)
                self._close_idle()
        finally:
            for client in list(self._clients.values()):
                self._close(client)
            selector.close()

    def _accept(self) -> None:
        try:
            sock, address = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:  # e.g. out of file descriptors: keep serving the others
            log.error("accept failed: %s", exc)
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(SEND_TIMEOUT_SECONDS)
        peer = address[0] if isinstance(address, tuple) else "127.0.0.1"
        client = _Client(sock, peer)
        self._clients[sock.fileno()] = client
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _close(self, client: _Client) -> None:
        self._clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(client.sock)
        client.sock.close()

    def _close_idle(self) -> None:
        deadline = time.monotonic() - IDLE_TIMEOUT_SECONDS
        for client in [c for c in self._clients.values() if c.last_active < deadline]:
            self._close(client)

    def _on_readable(self, client: _Client) -> bool:
        """Read what arrived and answer every request it completes; False: close the
        connection."""
        try:
            data = client.sock.recv(READ_SIZE)
        except OSError:
            return False
        client.last_active = time.monotonic()
        if client.draining:
            return bool(data)
        client.conn.receive_data(data)  # b"" is the peer's end of stream
        try:
            return self._handle_events(client)
        except h11.RemoteProtocolError as exc:
            return self._refuse(client, exc.error_status_hint, "Bad Request")
        except OSError:  # the peer went away while we answered
            return False

    def _handle_events(self, client: _Client) -> bool:
        conn = client.conn
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return True
            if event is h11.PAUSED:
                # A pipelined request waits for our answer to the previous one (sent by now).
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return False
            if isinstance(event, h11.Request):
                client.request, client.body, client.size = event, [], 0
                if _declared_length(event) > MAX_BODY_BYTES:
                    return self._refuse(client, 413, "Request Entity Too Large")
                if conn.client_is_waiting_for_100_continue:
                    client.sock.sendall(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
            elif isinstance(event, h11.Data):
                client.size += len(event.data)
                if client.size > MAX_BODY_BYTES:  # chunked bodies declare no length
                    return self._refuse(client, 413, "Request Entity Too Large")
                client.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._answer(client)
                if conn.our_state is not h11.DONE:
                    return False  # the client asked to close, or spoke HTTP/1.0
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return False

    def _answer(self, client: _Client) -> None:
        started = time.perf_counter()
        request = client.request
        assert request is not None
        target = request.target
        path, _, query = target.partition(b"?")
        http_request = HttpRequest(
            method=request.method.decode("ascii"),
            path=unquote(path.decode("latin-1")),
            query_string=query.decode("latin-1"),
            headers=[
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers
            ],
            body=b"".join(client.body),
            source_ip=client.peer,
            protocol=f"HTTP/{request.http_version.decode('ascii')}",
        )
        client.request, client.body = None, []
        response, answered_by = self._dispatch(http_request)
        self._send(client, response, head=http_request.method == "HEAD")
        log.info(
            '%s "%s %s" %d %.1fms -> %s',
            client.peer,
            http_request.method,
            http_request.path,
            response.status,
            (time.perf_counter() - started) * 1000,
            answered_by,
        )

    def _send(self, client: _Client, response: HttpResponse, *, head: bool = False) -> None:
        try:
            start = self._response_head(response)
        except h11.LocalProtocolError:
            # A header no HTTP/1.1 message can carry (a newline in a value, say): the function
            # returned a malformed result, which API Gateway answers with a 500 as well.
            log.error("a function returned headers that cannot be sent: %s", response.headers)
            response = gateway_error(500, "Internal Server Error")
            start = self._response_head(response)
        conn = client.conn
        data = conn.send(start)
        if response.body and not head:
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        client.sock.sendall(data)

    def _response_head(self, response: HttpResponse) -> h11.Response:
        headers = [
            (name, value) for name, value in response.headers if name not in _FRAMING_HEADERS
        ]
        headers.append(("content-length", str(len(response.body))))
        headers.append(("date", self._date().decode("ascii")))
        return h11.Response(status_code=response.status, headers=headers, reason=b"")

    def _refuse(self, client: _Client, status: int, message: str) -> bool:
        """Answer a request we will not read to the end and stop listening to the connection;
        False: close it now."""
        conn = client.conn
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False  # a response has begun already: closing is all that is left
        response = gateway_error(status, message)
        response.headers.append(("connection", "close"))
        try:
            head = h11.Response(
                status_code=status,
                headers=[
                    *response.headers,
                    ("content-length", str(len(response.body))),
                    ("date", self._date().decode("ascii")),
                ],
                reason=b"",
            )
            data = conn.send(head) + conn.send(h11.Data(data=response.body))
            data += conn.send(h11.EndOfMessage())
            client.sock.sendall(data)
            client.sock.shutdown(socket.SHUT_WR)
        except (h11.LocalProtocolError, OSError):
            return False
        client.draining = True
        log.info('%s "-" %d -> -', client.peer, status)
        return True


def _declared_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # h11 has refused such a request already
    return 0
