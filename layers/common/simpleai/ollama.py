"""A client of Ollama's native API. It sends through an httpx transport it is given, so a warm
function reuses one connection pool and tests can hand it any transport.

Requests go to the transport directly rather than through `httpx.AsyncClient`: the client's
per-request merging of URLs, headers, cookies, auth and redirects cost about 0.3 ms a call and
none of it applies to one fixed upstream. Headers, URLs and timeouts are built once here.

Transport failures and Ollama's `{"error": "..."}` answers become `GatewayError`s here, the one
place that knows what they mean.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx

from simpleai.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)


class OllamaClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
    ) -> None:
        self._transport = transport
        self.base_url = base_url.rstrip("/")
        self._headers = httpx.Headers(headers)
        self._timeout = timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/chat with `stream: false`; the answer object."""
        response = await self._send("POST", "/api/chat", _json({**request, "stream": False}))
        return _json_object(response)

    async def chat_stream(self, request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """POST /api/chat with `stream: true`; yields each NDJSON object as it arrives.

        Errors before the first line raise as usual; an `{"error": ...}` line mid-stream raises
        `UpstreamError`.
        """
        http_request = self._request("POST", "/api/chat", _json({**request, "stream": True}))
        response = await self._send_request(http_request, stream=True)
        try:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                item = _parse_line(line)
                if "error" in item:
                    raise UpstreamError(f"Ollama failed mid-stream: {item['error']}")
                yield item
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError("Ollama stopped answering mid-stream.") from exc
        except httpx.TransportError as exc:
            raise UpstreamError("The connection to Ollama broke mid-stream.") from exc
        finally:
            await response.aclose()

    async def tags(self) -> dict[str, Any]:
        return _json_object(await self._send("GET", "/api/tags"))

    async def version(self) -> dict[str, Any]:
        return _json_object(await self._send("GET", "/api/version"))

    async def _send(self, method: str, path: str, content: bytes | None = None) -> httpx.Response:
        return await self._send_request(self._request(method, path, content), stream=False)

    def _request(self, method: str, path: str, content: bytes | None) -> httpx.Request:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base_url + path)
        return httpx.Request(
            method,
            url,
            headers=self._headers,
            content=content,
            extensions={"timeout": self._timeout},
        )

    async def _send_request(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        try:
            response = await self._transport.handle_async_request(request)
            response.request = request
            if not stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()  # hands the connection back to the pool
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"Ollama at {self.base_url} did not answer in time."
            ) from exc
        except httpx.ConnectError as exc:
            raise UpstreamError(
                f"Ollama at {self.base_url} cannot be reached (connection refused or no route)."
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"The connection to Ollama at {self.base_url} failed: {type(exc).__name__}."
            ) from exc
        if response.status_code >= 400:
            if stream:
                await response.aread()
                await response.aclose()
            raise _status_error(response, request)
        return response


def _json(body: dict[str, Any]) -> bytes:
    """The request body as httpx's `json=` would send it (compact, UTF-8, no NaN)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _status_error(response: httpx.Response, request: httpx.Request) -> GatewayError:
    """Ollama's status -> ours: its 404 on a request naming a model is that model missing, its
    400 is the caller's request; anything else (5xx, or a 4xx about our own request) is 502."""
    message = _upstream_message(response)
    model = _requested_model(request)
    if response.status_code == 404 and model:
        return NotFoundError(
            f"The model '{model}' does not exist.", param="model", code="model_not_found"
        )
    if response.status_code == 400:
        return InvalidRequestError(f"Ollama rejected the request: {message}")
    return UpstreamError(f"Ollama answered {response.status_code}: {message}")


def _upstream_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text[:200]


def _requested_model(request: httpx.Request) -> str | None:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError("Ollama returned a body that is not JSON.") from exc
    if not isinstance(body, dict):
        raise UpstreamError("Ollama returned JSON that is not an object.")
    if "error" in body:
        raise UpstreamError(f"Ollama failed: {body['error']}")
    return body


def _parse_line(line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise UpstreamError("Ollama streamed a line that is not JSON.") from exc
    if not isinstance(item, dict):
        raise UpstreamError("Ollama streamed JSON that is not an object.")
    return item
