"""The local API's HTTP front: an ASGI app, served by uvicorn, that invokes Lambda handlers.

Each handler call runs on a worker thread with an event loop of its own that lives as long as the
thread, as a warm Lambda container keeps its loop (Mangum runs the app on the current thread's
loop). Several workers are several warm containers serving concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from localapi.events import (
    HttpRequest,
    HttpResponse,
    build_event,
    context_for,
    gateway_error,
    header_list,
    to_response,
)
from localapi.template import Application, LambdaHandler, load_handler

log = logging.getLogger("localapi")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP APIs refuse larger payloads


def _start_event_loop() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())


class LocalApi:
    """ASGI app: HTTP request -> API Gateway v2 event -> handler -> HTTP response."""

    def __init__(self, application: Application, *, workers: int = 8) -> None:
        self.application = application
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="lambda", initializer=_start_event_loop
        )
        self._handlers: dict[str, LambdaHandler] = {}
        self._load_lock = threading.Lock()

    def load_handlers(self) -> None:
        """Import every function now, so a broken one fails at start rather than at first call."""
        for logical_id in self.application.functions:
            self._handler(logical_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = await _read_request(scope, receive)
        if request is None:
            response = gateway_error(413, "Request Entity Too Large")
            target = "-"
        else:
            response, target = await self._dispatch(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
        log.info(
            '%s "%s %s" %d %.1fms -> %s',
            scope["client"][0] if scope.get("client") else "-",
            scope["method"],
            scope["path"],
            response.status,
            (time.perf_counter() - started) * 1000,
            target,
        )

    async def _dispatch(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        found = self.application.match(request.method, request.path)
        if found is None:
            return gateway_error(404, "Not Found"), "-"
        route, parameters = found
        event = build_event(request, route, parameters)
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self._pool, self.invoke, route.function, event)
        return response, route.function

    def invoke(self, logical_id: str, event: dict[str, Any]) -> HttpResponse:
        """Call one function's handler with `event`, as the Lambda runtime would."""
        function = self.application.functions[logical_id]
        try:
            result = self._handler(logical_id)(event, context_for(function))
        except Exception:
            log.error("%s raised:\n%s", logical_id, traceback.format_exc())
            return gateway_error(500, "Internal Server Error")
        try:
            return to_response(result)
        except (TypeError, ValueError):
            log.error("%s returned a malformed result", logical_id)
            return gateway_error(500, "Internal Server Error")

    def _handler(self, logical_id: str) -> LambdaHandler:
        handler = self._handlers.get(logical_id)
        if handler is None:
            with self._load_lock:
                handler = self._handlers.get(logical_id)
                if handler is None:
                    handler = load_handler(self.application.functions[logical_id])
                    self._handlers[logical_id] = handler
        return handler


async def _read_request(scope: dict[str, Any], receive: Any) -> HttpRequest | None:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    client = scope.get("client")
    return HttpRequest(
        method=scope["method"],
        path=scope["path"],
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=header_list(scope.get("headers", [])),
        body=b"".join(chunks),
        source_ip=client[0] if client else "127.0.0.1",
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
    )


class Server:
    """The local API on a socket, in a background thread or in the foreground."""

    def __init__(self, api: LocalApi, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off on accepted connections
        # only for sockets made with it, and with Nagle on a small response waits ~40 ms for
        # the client's delayed ACK.
        self.socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host = host
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            api, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.socket])

    def start(self) -> Server:
        self._thread = threading.Thread(target=self.serve_forever, name="localapi", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.api.close()
        self.socket.close()
