"""Handlers called in this process, as the benchmarks that time them without a server need."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

from simpleai import runtime
from simpleai.observability import SERVICE
from simpleai.settings import Settings
from simpleai.transport import Connect


@contextlib.contextmanager
def handlers_in_process(
    settings: Settings, *, ollama_connect: Connect | None = None
) -> Iterator[None]:
    """The runtime configured with `settings` (and `ollama_connect` opening the Ollama
    transport's connections, if given) on a fresh event loop of this thread, as Mangum runs
    each invocation on the current thread's loop; the access lines and EMF documents written
    as usual, but to /dev/null rather than our terminal."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime.configure(settings, ollama_connect=ollama_connect)
    handlers = [
        handler
        for handler in logging.getLogger(SERVICE).handlers
        if isinstance(handler, logging.StreamHandler)
    ]
    with open(os.devnull, "w") as devnull:
        previous = [handler.setStream(devnull) for handler in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)
            runtime.configure(None)
            asyncio.set_event_loop(None)
            loop.close()
