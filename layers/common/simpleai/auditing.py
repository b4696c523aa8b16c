"""The audit middleware: one audit record per HTTP request, written before the response leaves.

It sits outside the routes: whatever a route does (answers, raises, crashes) the middleware sees
the response, writes the record and only then lets the response go. Streamed responses pass
through chunk by chunk and are recorded before their last chunk (or when their caller goes
away). A record that cannot be written turns the answer into 503 `audit_unavailable`, unless
AUDIT_FAIL_OPEN. It also enforces the body size limit while reading the body, and sets the
request's deadline from the Lambda context.
"""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpleai import runtime
from simpleai.audit.records import AuditRecord
from simpleai.audit.redaction import redact_request_body, truncate_response
from simpleai.errors import (
    AuditUnavailableError,
    GatewayError,
    InternalError,
    RequestTooLargeError,
)
from simpleai.exchange import Exchange
from simpleai.observability import emit_request, logger
from simpleai.resilience import request_deadline
from simpleai.settings import Settings, SettingsError


class AuditMiddleware:
    """Writes one audit record per HTTP request before the response (or its last chunk) leaves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange.begin(scope)
        scope.setdefault("state", {})["exchange"] = exchange
        request_deadline.set(_deadline(scope))
        # The whole body is read here, so that it is audited even when a route refuses the
        # request before reading it; the app then receives it from memory.
        limit = _max_request_bytes()
        body = await _read_body(scope, receive, limit)
        if body is None:
            responder = _Responder(send, exchange, f"<request body over {limit} bytes>".encode())
            await responder.fail(
                RequestTooLargeError(f"The request body is larger than {limit} bytes.")
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        responder = _Responder(send, exchange, body)
        try:
            await self.app(scope, replay, responder.send)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": exchange.request_id})
            await responder.fail(
                InternalError(
                    f"The gateway failed to handle the request (request id {exchange.request_id})."
                )
            )
        finally:
            # A stream whose caller went away ends without its last chunk: record it anyway.
            responder.record_if_unfinished()


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed `limit` bytes."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _Responder:
    """Holds back a buffered response until its audit record is written."""

    def __init__(self, send: Send, exchange: Exchange, request_body: bytes) -> None:
        self._send = send
        self._exchange = exchange
        self._request_body = request_body
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._streaming = False
        self._started = False
        self._done = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), *self._common_headers()]
            self._start = {**message, "headers": headers}
            self._streaming = any(
                key == b"content-type" and value.startswith(b"text/event-stream")
                for key, value in headers
            )
            return  # held until the first chunk of a stream, or the audit of anything else
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            if self._streaming:
                if not self._started:
                    # The head waits for the first chunk, so that a failure before any content
                    # is still a plain error answer rather than a stream cut short.
                    self._started = True
                    assert self._start is not None
                    await self._send(self._start)
                await self._send(message)
            return
        await self._finish(message)

    def _common_headers(self) -> list[tuple[bytes, bytes]]:
        """On every answer: the request id, and no caching or sniffing of what may be private."""
        return [
            (b"x-request-id", self._exchange.request_id.encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *((k.encode(), v.encode()) for k, v in self._exchange.response_headers.items()),
        ]

    async def fail(self, error: GatewayError) -> None:
        """The app raised: answer with `error` unless a streamed answer already began."""
        if self._done:
            return
        self._exchange.error_type = error.type
        if self._started:
            self._chunks.append(b"")
            await self._finish({"type": "http.response.body", "body": b"", "more_body": False})
            return
        self._chunks = [json.dumps(error.to_body()).encode()]
        self._start = self._error_start(error)
        await self._finish({"type": "http.response.body", "body": self._chunks[0]})

    def record_if_unfinished(self) -> None:
        """Audit a response that began but never finished (the caller disconnected)."""
        if self._done or self._start is None:
            return
        self._done = True
        self._exchange.error_type = self._exchange.error_type or "client_disconnected"
        status = int(self._start["status"])
        self._try_write_audit(status)  # nobody is listening: a failure can only be logged
        self._log(status)

    def _try_write_audit(self, status: int) -> GatewayError | None:
        """Write the record; the error, already logged, when it could not be written."""
        try:
            self._write_audit(status)
        except GatewayError as exc:
            logger.error(
                "audit write failed",
                extra={"request_id": self._exchange.request_id, "error": exc.message},
            )
            return exc
        return None

    def _error_start(self, error: GatewayError) -> Message:
        extra = [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
        return {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), *self._common_headers(), *extra],
        }

    async def _finish(self, last: Message) -> None:
        assert self._start is not None
        status = int(self._start["status"])
        exc = self._try_write_audit(status)
        if exc is not None and (self._streaming or not _fail_open()):
            await self._refuse(
                exc
                if isinstance(exc, AuditUnavailableError)
                else AuditUnavailableError(exc.message)
            )
            return
        self._done = True
        if not self._started:
            self._started = True
            await self._send(self._start)
            await self._send({"type": "http.response.body", "body": b"".join(self._chunks)})
        else:
            await self._send(last)
        self._log(status)

    async def _refuse(self, error: GatewayError) -> None:
        self._done = True
        self._exchange.error_type = error.type
        if self._started:  # a stream already began: end it with an error event
            frame = b"event: error\ndata: " + json.dumps(error.to_body()).encode() + b"\n\n"
            await self._send({"type": "http.response.body", "body": frame})
        else:
            self._started = True
            await self._send(self._error_start(error))
            await self._send(
                {"type": "http.response.body", "body": json.dumps(error.to_body()).encode()}
            )
        self._log(error.status)

    def _write_audit(self, status: int) -> None:
        exchange = self._exchange
        try:
            components = runtime.components()
        except SettingsError as exc:
            raise AuditUnavailableError(f"The gateway is misconfigured: {exc}") from exc
        config = components.settings
        response = exchange.response_text
        if response is None:
            response = b"".join(self._chunks).decode("utf-8", "replace")
        response, truncated = truncate_response(response, config.audit_max_body_bytes)
        identity = exchange.identity
        components.audit.record(
            AuditRecord(
                request_path=exchange.path,
                method=exchange.method,
                response_status=status,
                request_id=exchange.request_id,
                user_id=identity.subject if identity else None,
                user_email=identity.email if identity else None,
                client_id=identity.client_id if identity else None,
                client_ip=exchange.client_ip,
                user_agent=exchange.user_agent,
                request_body=redact_request_body(
                    self._request_body,
                    store_images=config.audit_store_images,
                    parsed=exchange.request_json,
                ),
                response_body=response,
                response_truncated=truncated,
                latency_ms=round((time.perf_counter() - exchange.started) * 1000, 3),
                upstream_latency_ms=exchange.upstream_latency_ms,
                model_used=exchange.model,
                tokens_prompt=exchange.tokens_prompt,
                tokens_completion=exchange.tokens_completion,
                stream=exchange.stream,
                finish_reason=exchange.finish_reason,
                error_type=exchange.error_type,
            )
        )

    def _log(self, status: int) -> None:
        exchange = self._exchange
        emit_request(
            function=exchange.function,
            status=status,
            latency_ms=round((time.perf_counter() - exchange.started) * 1000, 3),
            access={
                "request_id": exchange.request_id,
                "method": exchange.method,
                "path": exchange.path,
                "user": exchange.identity.subject if exchange.identity else None,
            },
            model=exchange.model,
            error_type=exchange.error_type,
            upstream_latency_ms=exchange.upstream_latency_ms,
            tokens_prompt=exchange.tokens_prompt,
            tokens_completion=exchange.tokens_completion,
        )


DEADLINE_MARGIN_SECONDS = 0.5
"""Kept back from the Lambda's remaining time, to render and audit an upstream timeout."""


def _deadline(scope: Scope) -> float | None:
    context = scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + float(remaining()) / 1000 - DEADLINE_MARGIN_SECONDS


def _max_request_bytes() -> int:
    try:
        return runtime.settings().max_request_bytes
    except SettingsError:
        return Settings.max_request_bytes


def _fail_open() -> bool:
    try:
        return runtime.settings().audit_fail_open
    except SettingsError:
        return False
