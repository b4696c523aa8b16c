"""HTTP clients for the measurements."""

from __future__ import annotations

import socket
from typing import Any

import httpx

# httpx's synchronous transport leaves Nagle's algorithm on, and it writes a request's headers
# and body separately: the body would wait for the server's delayed ACK. (asyncio, under the
# gateway's own client, turns Nagle off by itself.)
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def client(**options: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(socket_options=NO_DELAY), **options)
