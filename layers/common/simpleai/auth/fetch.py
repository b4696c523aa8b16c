"""The transport under the httpx client that fetches the identity provider's documents (the
OIDC discovery document and the JWKS): the standard library's `http.client`, one kept connection
per origin.

httpx's own transport (httpcore, which brings h11) is imported the first time a client is
built: 15-20 ms of every cold start, for two GETs. `http.client` is already imported by then
(PyJWT's JWKS client imports `urllib.request`). httpx stays the client: headers, status, JSON
and content decoding. Where the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`,
`ALL_PROXY`), runtime.JsonFetcher leaves httpx its own transports, which support one.

A kept connection serves the JWKS request right after the discovery request, as httpx's pool
did, without a second TLS handshake. A provider closes idle connections long before the next
refresh, so a request that fails on a kept connection is sent once more on a new one.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading

import httpx

from simpleai.tls import verifying_context


class StdlibTransport(httpx.BaseTransport):
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        message = (
            request.method,
            url.raw_path.decode("ascii"),
            request.read() or None,
            {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in request.headers.raw
            },
        )
        with self._lock:
            kept = self._idle.pop(key, None)
        if kept is not None:
            try:
                return self._exchange(kept, key, message)
            except (OSError, http.client.HTTPException):
                kept.close()  # the provider closed it while idle: once more, on a new one
        timeouts = request.extensions.get("timeout") or {}
        timeout = max((value for value in timeouts.values() if value is not None), default=None)
        connection = self._open(key, timeout)
        try:
            return self._exchange(connection, key, message)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _httpx_error(exc) from exc

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        key: tuple[str, str, int],
        message: tuple[str, str, bytes | None, dict[str, str]],
    ) -> httpx.Response:
        method, target, body, headers = message
        connection.request(method, target, body, headers)
        response = connection.getresponse()
        content = response.read()
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                previous = self._idle.pop(key, None)
                self._idle[key] = connection
            if previous is not None:
                previous.close()
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            content=content,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connection in idle.values():
            connection.close()

    def _open(self, key: tuple[str, str, int], timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            context = self._ssl_context or verifying_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)


def _httpx_error(exc: Exception) -> httpx.TransportError:
    """The failure as httpx's transport would have named it."""
    if isinstance(exc, TimeoutError):
        return httpx.TimeoutException(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror | ssl.SSLError):
        return httpx.ConnectError(f"{type(exc).__name__}: {exc}")
    return httpx.NetworkError(f"{type(exc).__name__}: {exc}")
