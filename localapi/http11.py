"""HTTP/1.1 for one worker of the local API: a selector loop over the shared listening socket and
the connections this worker accepted, parsed by httptools (llhttp, Node's parser), each request
answered inline.

A worker plays one warm Lambda container: it runs one invocation at a time, on its own thread, so
the handler is called where the request was read, with no hop to another thread or process and
back. Several workers (threads or processes) share the listening socket, and each keeps the
connections it accepted (keep-alive). So that these spread evenly, rather than gathering on
whichever worker woke first, a worker holding more connections than another leaves a new one to
the others for a moment (`Holdings`).
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
from multiprocessing.sharedctypes import RawArray
from urllib.parse import unquote

import httptools

from localapi.events import HttpRequest, HttpResponse, gateway_error

log = logging.getLogger("localapi")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP APIs refuse larger payloads
IDLE_TIMEOUT_SECONDS = 30.0
"""A connection with no traffic for this long is closed (idle keep-alive, or a stalled request)."""
SEND_TIMEOUT_SECONDS = 30.0
READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers; a longer head is answered with 431."""
ACCEPT_PATIENCE_SECONDS = 0.05
"""How long a worker holding more connections than another leaves a new connection to the
others; if it is still waiting then (the others are all busy), the worker takes it."""
DEFERRING_POLL_SECONDS = 0.002
"""How often a deferring worker looks whether the others have caught up."""
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


class _Request:
    """A request whose head and body have arrived."""

    __slots__ = ("body", "headers", "keep_alive", "method", "target", "version")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        version: str,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.version = version
        self.keep_alive = keep_alive


class _Client:
    """One accepted connection: the parser's callbacks collect its requests as they arrive."""

    __slots__ = (
        "awaiting_head",
        "body",
        "complete",
        "continue_expected",
        "draining",
        "head_size",
        "headers",
        "last_active",
        "parser",
        "peer",
        "refusal",
        "size",
        "sock",
        "target",
    )

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.parser = httptools.HttpRequestParser(self)
        self.last_active = time.monotonic()
        self.complete: list[_Request] = []
        self.refusal = 0
        """A status to refuse the request in progress with (413, 431), once parsing pauses."""
        self.continue_expected = False
        self.awaiting_head = True
        self.head_size = 0
        """Bytes received while a head was incomplete: the parser keeps a partial head in
        memory, so a head that never ends is refused with 431 once this passes the limit."""
        self.draining = False
        """Refused and half-closed: what the client still sends is read and dropped until it
        closes, so that it reads our answer rather than a reset."""
        self.on_message_begin()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0

    def on_url(self, part: bytes) -> None:  # may arrive in pieces
        self.target += part

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.awaiting_head, self.head_size = False, 0
        declared = 0
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"expect" and value.lower() == b"100-continue":
                self.continue_expected = True
        if declared > MAX_BODY_BYTES:
            self.refusal = 413

    def on_body(self, part: bytes) -> None:
        self.size += len(part)
        if self.size > MAX_BODY_BYTES:  # chunked bodies declare no length
            self.refusal = 413
        elif not self.refusal:
            self.body.append(part)

    def on_message_complete(self) -> None:
        if self.refusal:
            return
        parser = self.parser
        version = parser.get_http_version()
        self.complete.append(
            _Request(
                parser.get_method(),
                self.target,
                self.headers,
                b"".join(self.body),
                version=version,
                # HTTP/1.0 keep-alive would need `Connection: keep-alive` echoed: not worth it.
                keep_alive=version == "1.1" and parser.should_keep_alive(),
            )
        )
        self.continue_expected = False
        self.awaiting_head = True


class Holdings:
    """How many connections each worker holds, in memory that every worker sees: threads, or
    processes forked after it was made. Each worker writes its own slot only."""

    def __init__(self, workers: int) -> None:
        self._held = RawArray("i", workers)

    def hold(self, worker: int, connections: int) -> None:
        self._held[worker] = connections

    def fewest(self) -> int:
        return int(min(self._held))


class Worker:
    """Serves connections from `listener` until `stop_fd` becomes readable (or reaches EOF);
    worker `number` of those sharing `holdings`, if it has company."""

    def __init__(
        self,
        listener: socket.socket,
        dispatch: Dispatch,
        stop_fd: int,
        *,
        holdings: Holdings | None = None,
        number: int = 0,
    ) -> None:
        self._listener = listener
        self._dispatch = dispatch
        self._stop_fd = stop_fd
        self._holdings = holdings
        self._number = number
        self._selector = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        self._date = _Date()
        self._deferring_until = 0.0
        """While set, the listener is left to the other workers until then."""

    def serve(self) -> None:
        selector = self._selector
        selector.register(self._listener, selectors.EVENT_READ, "listener")
        selector.register(self._stop_fd, selectors.EVENT_READ, "stop")
        self._publish_count()  # a worker replacing one that died: its connections died with it
        try:
            while True:
                deferring = self._deferring_until > 0
                timeout = DEFERRING_POLL_SECONDS if deferring else IDLE_TIMEOUT_SECONDS / 4
                for key, _mask in selector.select(timeout=timeout):
                    if key.data == "stop":
                        return
                    if key.data == "listener":
                        self._on_connection()
                    elif not self._on_readable(key.data):
                        self._close(key.data)
                if deferring:
                    self._reconsider()
                self._close_idle()
        finally:
            for client in list(self._clients.values()):
                self._close(client)
            selector.close()

    def _on_connection(self) -> None:
        """Accept it, unless another worker holds fewer connections: then leave it to them."""
        if self._fair():
            self._accept()
            return
        self._selector.unregister(self._listener)
        self._deferring_until = time.monotonic() + ACCEPT_PATIENCE_SECONDS

    def _fair(self) -> bool:
        return self._holdings is None or len(self._clients) <= self._holdings.fewest()

    def _reconsider(self) -> None:
        """While deferring: listen again once no other worker holds fewer connections, or once
        the patience is over, taking a connection that still waits (the others are busy)."""
        patience_over = time.monotonic() >= self._deferring_until
        if not (patience_over or self._fair()):
            return
        self._deferring_until = 0.0
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        if patience_over:
            self._accept()  # a no-op if nothing waits

    def _publish_count(self) -> None:
        """Tell the other workers how many connections this one holds."""
        if self._holdings is not None:
            self._holdings.hold(self._number, len(self._clients))

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
        self._publish_count()

    def _close(self, client: _Client) -> None:
        self._clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(client.sock)
        client.sock.close()
        self._publish_count()

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
        if not data:
            return False  # the client closed (a request it left unfinished goes unanswered)
        client.last_active = time.monotonic()
        if client.draining:
            return True
        if client.awaiting_head:
            client.head_size += len(data)
        upgrade = False
        try:
            client.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # `Upgrade: h2c` or a CONNECT: API Gateway switches to nothing; the request is
            # answered as HTTP/1.1 and the connection closed, as the rest is not HTTP/1.1.
            upgrade = True
        except httptools.HttpParserError:
            return self._refuse(client, 400)
        if client.awaiting_head and client.head_size > MAX_HEAD_BYTES:
            client.refusal = 431
        if upgrade and not client.complete:
            return self._refuse(client, 400)  # CONNECT, or an upgrade with a body
        try:
            while client.complete:
                request = client.complete.pop(0)
                if upgrade and not client.complete:
                    request.keep_alive = False
                self._answer(client, request)
                if not request.keep_alive:
                    return False
            if client.refusal:
                return self._refuse(client, client.refusal)
            if client.continue_expected:
                client.continue_expected = False
                client.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:  # the peer went away while we answered
            return False
        return not upgrade

    def _answer(self, client: _Client, request: _Request) -> None:
        started = time.perf_counter()
        path, _, query = request.target.partition(b"?")
        http_request = HttpRequest(
            method=request.method.decode("ascii"),
            path=unquote(path.decode("latin-1")),
            query_string=query.decode("latin-1"),
            headers=[
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers
            ],
            body=request.body,
            source_ip=client.peer,
            protocol=f"HTTP/{request.version}",
        )
        keep_alive = request.keep_alive
        try:
            response, answered_by = self._dispatch(http_request)
        except Exception:
            # The local API's own failure (the handler's are answered inside dispatch): answer
            # it rather than let it end this worker.
            log.exception("the local API failed on %s %s", http_request.method, http_request.path)
            response, answered_by = gateway_error(500, "Internal Server Error"), "-"
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

    def _refuse(self, client: _Client, status: int) -> bool:
        """Answer a request we will not read to the end and stop listening to the connection;
        False: close it now."""
        response = gateway_error(status, HTTPStatus(status).phrase)
        data = encode_response(response, date=self._date(), keep_alive=False)
        try:
            client.sock.sendall(data)
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        client.draining = True
        log.info('%s "-" %d -> -', client.peer, status)
        return True


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
