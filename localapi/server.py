"""The local API: template.yaml's routes on a socket, each request turned into an API Gateway
HTTP API event for its function's real Lambda handler.

Several workers are several warm containers serving concurrent requests; each reads its requests
and calls the handler itself (localapi/http11.py). As processes (what `python -m localapi` runs)
they share no interpreter lock with each other, as `sam local` runs each container apart; they
are forked after the handlers are imported, so each starts warm. As threads (tests, where
`runtime.configure` in the test must reach the handlers) each has an event loop of its own that
lives as long as the thread, as a warm Lambda container keeps its loop (Mangum runs the app on the
current thread's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import traceback
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from localapi.events import (
    HttpRequest,
    HttpResponse,
    build_event,
    context_for,
    gateway_error,
    to_response,
)
from localapi.http11 import Holdings, Worker
from localapi.template import Application, LambdaHandler, load_handler

log = logging.getLogger("localapi")

STOP_TIMEOUT_SECONDS = 10.0
DEAD = 2**31 - 1
"""The connections a dead worker is counted as holding: so many that it never holds the fewest."""


class LocalApi:
    """Requests -> API Gateway v2 events -> handlers -> responses."""

    def __init__(
        self, application: Application, *, workers: int = 8, processes: bool = False
    ) -> None:
        self.application = application
        self.workers = workers
        self.processes = processes
        self._handlers: dict[str, LambdaHandler] = {}
        self._load_lock = threading.Lock()

    def load_handlers(self) -> None:
        """Import every function now, so a broken one fails at start rather than at first call."""
        for logical_id in self.application.functions:
            self._handler(logical_id)

    def close(self) -> None:
        """Nothing to release: workers belong to the `Server`."""

    def dispatch(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        """The response to `request`, and the function that gave it ("-": API Gateway itself)."""
        found = self.application.match(request.method, request.path)
        if found is None:
            return gateway_error(404, "Not Found"), "-"
        route, parameters = found
        return self.invoke(route.function, build_event(request, route, parameters)), route.function

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


def _run_worker(
    listener: socket.socket, api: LocalApi, stop_fd: int, holdings: Holdings, number: int
) -> None:
    # Mangum runs each invocation on the current thread's event loop: one per warm container.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        Worker(listener, api.dispatch, stop_fd, holdings=holdings, number=number).serve()
    finally:
        loop.close()


def _worker_process(
    listener: socket.socket,
    api: LocalApi,
    stop_fd: int,
    stop_writer: int,
    holdings: Holdings,
    number: int,
) -> None:
    """A worker process's life: forked from the server, it serves until the server stops (or
    dies: the stop pipe then reaches EOF, as no worker holds its writing end)."""
    os.close(stop_writer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A thread of its own: the forked main thread carries the forking thread's thread-local
    # state (a runtime's per-thread clients, say); a new thread starts with none of it.
    thread = threading.Thread(
        target=_run_worker, args=(listener, api, stop_fd, holdings, number), name="lambda"
    )
    thread.start()
    thread.join()


class Server:
    """The local API on a socket: `start()` serves from background threads (or processes, with
    `LocalApi(processes=True)`), `serve_forever()` until SIGINT or SIGTERM."""

    def __init__(self, api: LocalApi, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        # IPPROTO_TCP spelled out, as asyncio once needed it to turn Nagle's algorithm off; each
        # accepted connection sets TCP_NODELAY itself (a response is written in one piece).
        self.socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(1024)
        self.socket.setblocking(False)  # idle workers race for each connection; losers move on
        self.host = host
        self.port = self.socket.getsockname()[1]
        # Closing the writing end tells every worker to finish its request and stop.
        self._stop_reader, self._stop_writer = os.pipe()
        # Shared with the workers (forked ones too), so that each takes its share of connections.
        self._holdings = Holdings(api.workers)
        self._threads: list[threading.Thread] = []
        self._processes: dict[int, BaseProcess] = {}  # by worker number
        self._stopping = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Server:
        if self.api.processes:
            self._start_processes()
            self._threads.append(
                threading.Thread(target=self._supervise, name="localapi-supervisor", daemon=True)
            )
        else:
            for number in range(self.api.workers):
                self._threads.append(
                    threading.Thread(
                        target=_run_worker,
                        args=(self.socket, self.api, self._stop_reader, self._holdings, number),
                        name=f"lambda-{number}",
                        daemon=True,
                    )
                )
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM; worker processes are supervised from this thread, so
        this process stays single-threaded and forks safely."""
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            if self.api.processes:
                self._start_processes()
                self._supervise()
            else:
                self.start()
                for thread in self._threads:
                    thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        os.close(self._stop_writer)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=STOP_TIMEOUT_SECONDS)
        for process in self._processes.values():
            process.join(timeout=STOP_TIMEOUT_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join(timeout=STOP_TIMEOUT_SECONDS)
        self.api.close()
        self.socket.close()
        os.close(self._stop_reader)

    def _start_processes(self) -> None:
        self.api.load_handlers()
        for number in range(self.api.workers):
            self._processes[number] = self._fork_worker(number)

    def _fork_worker(self, number: int) -> BaseProcess:
        process = multiprocessing.get_context("fork").Process(
            target=_worker_process,
            args=(
                self.socket,
                self.api,
                self._stop_reader,
                self._stop_writer,
                self._holdings,
                number,
            ),
            name="lambda",
            daemon=True,
        )
        process.start()
        return process

    def _supervise(self) -> None:
        """Replace a worker process that dies, as a new container replaces a crashed one."""
        while True:
            sentinels = {process.sentinel: number for number, process in self._processes.items()}
            ready = wait([self._stop_reader, *sentinels])
            if self._stop_reader in ready or self._stopping:
                return
            for sentinel in ready:
                number = sentinels[sentinel]  # type: ignore[index]
                process = self._processes.pop(number)
                process.join()
                self._holdings.hold(number, DEAD)  # until its replacement starts
                log.error(
                    "worker process %s exited with %s; starting another",
                    process.pid,
                    process.exitcode,
                )
                with contextlib.suppress(OSError):
                    self._processes[number] = self._fork_worker(number)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
