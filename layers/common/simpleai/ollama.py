"""A client of Ollama's native API, over the transport it is given (simpleai/transport.py, with
retries and the circuit breaker around it), so a warm function reuses one connection pool.

Bodies go out as compact JSON and come back as bytes parsed here: no request or response
objects are built around them. Transport failures and Ollama's `{"error": "..."}` answers become
`GatewayError`s here, the one place that knows what they mean.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from simpleai.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from simpleai.tls import CaBundleError
from simpleai.translate.types import Base64Image
from simpleai.transport import Timeouts, Transport, UpstreamResponse


class OllamaClient:
    def __init__(self, transport: Transport, base_url: str, *, timeouts: Timeouts) -> None:
        self._transport = transport
        self.base_url = base_url.rstrip("/")
        self._timeouts = timeouts

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/chat with `stream: false`; the answer object."""
        body = _json({**request, "stream": False})
        response = await self._send("POST", "/api/chat", body)
        return _json_object(await self._read(response))

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """POST /api/chat with `stream: true`; yields each NDJSON object as it arrives.

        Errors before the first line raise as usual; an `{"error": ...}` line mid-stream raises
        `UpstreamError`.
        """
        response = await self._send("POST", "/api/chat", _json({**request, "stream": True}))
        try:
            pending = b""
            async for chunk in response.body:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if item := _parse_line(line):
                        yield item
            if item := _parse_line(pending):
                yield item
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("Ollama stopped answering mid-stream.") from exc
        except httpx.TransportError as exc:
            raise UpstreamError("The connection to Ollama broke mid-stream.") from exc
        finally:
            await response.aclose()

    async def tags(self) -> dict[str, Any]:
        return _json_object(await self._read(await self._send("GET", "/api/tags")))

    async def version(self) -> dict[str, Any]:
        return _json_object(await self._read(await self._send("GET", "/api/version")))

    async def _send(self, method: str, path: str, body: bytes | None = None) -> UpstreamResponse:
        """The answer's head, once Ollama has sent it; a `GatewayError` for a failure or an
        error status (whose body is read here)."""
        try:
            response = await self._transport.request(method, path, body, self._timeouts)
            if response.status >= 400:
                raise _status_error(response.status, await response.read(), response.reason, body)
        except httpx.TransportError as exc:
            raise self._failure(exc) from exc
        return response

    async def _read(self, response: UpstreamResponse) -> bytes:
        try:
            return await response.read()
        except httpx.TransportError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: httpx.TransportError) -> GatewayError:
        """A transport failure as the caller hears of it (504 for a timeout, else 502)."""
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeoutError(f"Ollama at {self.base_url} did not answer in time.")
        if isinstance(exc, httpx.ConnectError):
            return UpstreamError(f"Ollama at {self.base_url} cannot be reached: {_why(exc)}.")
        return UpstreamError(
            f"The connection to Ollama at {self.base_url} failed: {type(exc).__name__}."
        )


def _why(failure: httpx.ConnectError) -> str:
    """Why a connection could not be made, in terms the operator can act on."""
    cause = failure.__cause__
    if isinstance(cause, CaBundleError):
        return "the CA bundle SSL_CERT_FILE or SSL_CERT_DIR names cannot be loaded"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            "its TLS certificate is not trusted (the gateway trusts certifi's CAs, or those "
            "SSL_CERT_FILE names)"
        )
    if isinstance(cause, ssl.SSLError):
        return "the TLS handshake failed"
    return "connection refused or no route"


def _json(body: dict[str, Any]) -> bytes:
    """Compact, strict JSON, as Ollama reads it. A message's checked images (`Base64Image`) go
    in as they are: the encoder scanned a 4 MiB photo's base64 for characters to escape, ~10 ms
    of the request, and there are none. Any other image is encoded as usual."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(map(_spliced, messages)):
        return _compact(body).encode()
    rest = _compact({name: value for name, value in body.items() if name != "messages"})
    pieces = [rest[:-1], ',"messages":[' if len(rest) > 2 else '"messages":[']
    for index, message in enumerate(messages):
        if index:
            pieces.append(",")
        if not _spliced(message):
            pieces.append(_compact(message))
            continue
        others = _compact({name: value for name, value in message.items() if name != "images"})
        pieces += [others[:-1], ',"images":["' if len(others) > 2 else '"images":["']
        pieces += ['","'.join(message["images"]), '"]}']
    pieces.append("]}")
    return "".join(pieces).encode()


def _spliced(message: object) -> bool:
    """Whether `message` holds images that all go into the JSON as they are."""
    images = message.get("images") if isinstance(message, dict) else None
    return (
        isinstance(images, list)
        and bool(images)
        and all(type(image) is Base64Image for image in images)
    )


def _compact(value: object) -> str:
    """No NaN or Infinity: strict JSON, which Ollama could not read otherwise."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _status_error(
    status: int, content: bytes, reason: str, request_body: bytes | None
) -> GatewayError:
    """Ollama's status -> ours: its 404 on a request naming a model is that model missing, its
    400 is the caller's request; anything else (5xx, or a 4xx about our own request) is 502."""
    message = _upstream_message(content, reason)
    model = _requested_model(request_body)
    if status == 404 and model:
        return NotFoundError(
            f"The model '{model}' does not exist.", param="model", code="model_not_found"
        )
    if status == 400:
        return InvalidRequestError(f"Ollama rejected the request: {message}")
    return UpstreamError(f"Ollama answered {status}: {message}")


def _upstream_message(content: bytes, reason: str) -> str:
    text = content.decode("utf-8", "replace")
    try:
        body = json.loads(content)
    except ValueError:
        return text[:200] or reason
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return text[:200]


def _requested_model(request_body: bytes | None) -> str | None:
    try:
        body = json.loads(request_body or b"{}")
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise UpstreamError("Ollama returned a body that is not JSON.") from exc
    if not isinstance(body, dict):
        raise UpstreamError("Ollama returned JSON that is not an object.")
    if "error" in body:
        raise UpstreamError(f"Ollama failed: {body['error']}")
    return body


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """One NDJSON line's object; None for a blank line. An `{"error": ...}` line raises."""
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise UpstreamError("Ollama streamed a line that is not JSON.") from exc
    if not isinstance(item, dict):
        raise UpstreamError("Ollama streamed JSON that is not an object.")
    if "error" in item:
        raise UpstreamError(f"Ollama failed mid-stream: {item['error']}")
    return item
