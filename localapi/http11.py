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
import re
import selectors
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote

import h11

from localapi.events import HttpRequest, HttpResponse, gateway_error

log = logging.getLogger("localapi")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP APIs refuse larger payloads
IDLE_TIMEOUT_SECONDS = 30.0
"""A connection with no traffic for this long is closed (idle keep-alive, or a stalled request)."""
SEND_TIMEOUT_SECONDS = 30.0
READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers; h11 answers a longer head with 431."""
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
        self.conn = _parser()
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
            status = exc.error_status_hint  # 400, or 431 for an endless head
            return self._refuse(client, status, HTTPStatus(status).phrase)
        except OSError:  # the peer went away while we answered
            return False

    def _handle_events(self, client: _Client) -> bool:
        conn = client.conn
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return True
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
                # h11 has read the client's wishes: MUST_CLOSE after `Connection: close` or
                # from an HTTP/1.0 client.
                keep_alive = conn.their_state is h11.DONE
                self._answer(client, keep_alive=keep_alive)
                if not keep_alive:
                    return False
                # The response was written by encode_response, not through h11 (a third of
                # the server's cost per request went into h11 building it): a fresh parser
                # takes the next request, with whatever of it has arrived already.
                leftover, closed = conn.trailing_data
                conn = client.conn = _parser()
                if leftover:
                    conn.receive_data(leftover)
                if closed:  # (an empty receive_data is h11's end of stream)
                    conn.receive_data(b"")
            else:  # ConnectionClosed; PAUSED cannot occur as no request is left unanswered
                return False

    def _answer(self, client: _Client, *, keep_alive: bool) -> None:
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
        head = http_request.method == "HEAD"
        try:
            data = encode_response(response, date=self._date(), keep_alive=keep_alive, head=head)
        except ValueError:
            # A header no HTTP/1.1 message can carry (a newline in a value, say): the function
            # returned a malformed result, which API Gateway answers with a 500 as well.
            log.error("%s returned headers that cannot be sent", answered_by)
            response = gateway_error(500, "Internal Server Error")
            data = encode_response(response, date=self._date(), keep_alive=keep_alive, head=head)
        client.sock.sendall(data)
        log.info(
            '%s "%s %s" %d %.1fms -> %s',
            client.peer,
            http_request.method,
            http_request.path,
            response.status,
            (time.perf_counter() - started) * 1000,
            answered_by,
        )

    def _refuse(self, client: _Client, status: int, message: str) -> bool:
        """Answer a request we will not read to the end and stop listening to the connection;
        False: close it now."""
        data = encode_response(gateway_error(status, message), date=self._date(), keep_alive=False)
        try:
            client.sock.sendall(data)
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        client.draining = True
        log.info('%s "-" %d -> -', client.peer, status)
        return True


def _parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)


_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")  # no CR, LF or other controls
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def encode_response(
    response: HttpResponse, *, date: bytes, keep_alive: bool, head: bool = False
) -> bytes:
    """`response` as HTTP/1.1 bytes, framed by Content-Length; ValueError for a header name or
    value that HTTP cannot carry (so a handler cannot split the response)."""
    status = response.status
    if not 100 <= status <= 999:
        raise ValueError(f"status {status}")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    for name, value in response.headers:
        if name.lower() in _FRAMING_HEADERS:
            continue
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")  # may raise too
        if not _TOKEN.fullmatch(raw_name) or not _FIELD_VALUE.fullmatch(raw_value):
            raise ValueError(f"header {name!r}")
        lines.append(b"%s: %s\r\n" % (raw_name, raw_value))
    bodiless = status < 200 or status in (204, 304)
    if not bodiless:
        lines.append(b"content-length: %d\r\n" % len(response.body))
    lines.append(b"date: %s\r\n" % date)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    if not (bodiless or head):
        lines.append(response.body)
    return b"".join(lines)


def _declared_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # h11 has refused such a request already
    return 0
