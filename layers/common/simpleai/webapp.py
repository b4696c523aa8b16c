"""What every function's FastAPI app shares: the audit middleware, the one error renderer, the
authentication dependency and the Lambda entry point.

The audit middleware sits outside the routes: whatever a route does (answers, raises, crashes)
the middleware sees the response, writes the audit record and only then lets the response leave.
Streamed responses pass through chunk by chunk and are recorded before their last chunk.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpleai import __version__, runtime
from simpleai.audit.records import AuditRecord
from simpleai.audit.redaction import redact_request_body, truncate_response
from simpleai.auth import Identity
from simpleai.errors import (
    AuditUnavailableError,
    AuthenticationError,
    GatewayError,
    InsufficientScopeError,
    InternalError,
    InvalidRequestError,
    MissingTokenError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
    error_body,
)
from simpleai.observability import emit_request_metrics, log_access, logger, tracer
from simpleai.quota import assess, window_starts
from simpleai.resilience import request_deadline
from simpleai.settings import Settings, SettingsError


@dataclass
class Exchange:
    """What the routes learn about one request, for its audit record and access log line."""

    request_id: str
    method: str
    path: str
    client_ip: str | None
    user_agent: str | None
    function: str = "local"
    started: float = field(default_factory=time.perf_counter)
    identity: Identity | None = None
    model: str | None = None
    stream: bool = False
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    upstream_latency_ms: float | None = None
    request_json: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    """Added to the answer, whatever it is (the rate-limit headers of an allowed request)."""
    response_text: str | None = None
    """Set by a route whose body the middleware cannot read whole (an assembled stream)."""

    @classmethod
    def begin(cls, scope: Scope) -> Exchange:
        event = scope.get("aws.event") or {}
        context = event.get("requestContext") or {}
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        client = scope.get("client")
        lambda_context = scope.get("aws.context")
        return cls(
            function=getattr(lambda_context, "function_name", None)
            or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
            request_id=context.get("requestId") or str(uuid.uuid4()),
            method=scope["method"],
            path=scope["path"],
            client_ip=(context.get("http") or {}).get("sourceIp")
            or (client[0] if client else None),
            user_agent=headers.get("user-agent"),
        )


def exchange_of(request: Request) -> Exchange:
    exchange: Exchange = request.scope["state"]["exchange"]
    return exchange


async def authenticated(request: Request) -> Identity:
    """FastAPI dependency: the caller's verified identity, or a 401/403/503."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise AuthenticationError("Send exactly one Authorization header.", code="invalid_request")
    verifier = runtime.components().verifier
    identity = verifier.identify(values[0] if values else None)
    # Recorded before the scope check, so that a refused but verified caller is named in the audit.
    exchange_of(request).identity = identity
    verifier.require_scopes(identity)
    _enforce_limits(identity, exchange_of(request))
    return identity


def _enforce_limits(identity: Identity, exchange: Exchange) -> None:
    """Per-user rate and token quota from the shared audit store; 429 once one is spent."""
    config = runtime.settings()
    if not (config.rate_limit_requests_per_minute or config.token_quota_per_day):
        return
    now = datetime.now(UTC)
    window_start, day_start = window_starts(now)
    usage = runtime.components().audit.usage(
        identity.subject, window_start=window_start, day_start=day_start
    )
    verdict = assess(
        usage,
        requests_per_minute=config.rate_limit_requests_per_minute,
        tokens_per_day=config.token_quota_per_day,
        now=now,
    )
    if verdict.refusal is not None:
        raise verdict.refusal
    exchange.response_headers.update(verdict.headers)


Caller = Annotated[Identity, Depends(authenticated)]
"""A route parameter of this type requires and receives the caller's verified identity."""


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or a 400 saying why not."""
    body = await request.body()
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestError(
            "The request body is not valid JSON." if body else "The request body is empty."
        ) from exc
    exchange_of(request).request_json = parsed
    return parsed


def create_app(title: str) -> FastAPI:
    """A FastAPI app with the gateway's error rendering, CORS and audit middleware."""
    app = FastAPI(title=title, version=__version__, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(GatewayError, _render_gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _render_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _render_validation_error)  # type: ignore[arg-type]
    app.add_middleware(CorsFromSettings)
    app.add_middleware(AuditMiddleware)
    return app


LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(asgi_handler: LambdaHandler) -> LambdaHandler:
    """Wrap a Mangum handler with Powertools' Lambda context and correlation id, and with
    X-Ray tracing when TRACING_ENABLED (decided at the first call, when settings are read)."""
    traced: LambdaHandler | None = None

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal traced
        if traced is None:
            traced = _with_tracing(asgi_handler)
        return traced(event, context)

    return handler


def _with_tracing(asgi_handler: LambdaHandler) -> LambdaHandler:
    try:
        enabled = runtime.settings().tracing_enabled
    except SettingsError:
        return asgi_handler  # the request itself reports the configuration error
    if not enabled:
        return asgi_handler
    wrapped: LambdaHandler = tracer().capture_lambda_handler(asgi_handler)
    return wrapped


def error_response(error: GatewayError, request: Request | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        headers.setdefault("WWW-Authenticate", _www_authenticate(error))
    if request is not None:
        exchange_of(request).error_type = error.type
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


RFC6750_ERRORS = ("invalid_request", "invalid_token", "insufficient_scope")


def _www_authenticate(error: GatewayError) -> str:
    """RFC 6750 section 3; a request that carried no bearer token gets no error code."""
    challenge = 'Bearer realm="simpleai-gateway"'
    if isinstance(error, MissingTokenError) or error.code not in RFC6750_ERRORS:
        return challenge
    parts = [
        challenge,
        f'error="{error.code}"',
        f'error_description="{_quoted_string(error.message)}"',
    ]
    if isinstance(error, InsufficientScopeError):
        parts.append(f'scope="{_quoted_string(" ".join(error.required_scopes))}"')
    return ", ".join(parts)


def _quoted_string(text: str) -> str:
    """Only the characters RFC 6750 allows in error_description and scope: no quote or
    backslash, printable ASCII."""
    return "".join(
        char if 0x20 <= ord(char) <= 0x7E and char not in '"\\' else "'" for char in text
    )


async def _render_gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
    return error_response(exc, request)


async def _render_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        error: GatewayError = NotFoundError(f"No route for {request.method} {request.url.path}.")
    elif exc.status_code == 405:
        error = InvalidRequestError(
            f"Method {request.method} is not allowed here.", code="method_not_allowed"
        )
        error.status = 405  # type: ignore[misc]
    else:
        error = InvalidRequestError(str(exc.detail))
        error.status = exc.status_code  # type: ignore[misc]
    return error_response(error, request)


async def _render_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
    return error_response(
        InvalidRequestError(
            f"Invalid request: {first.get('msg', 'malformed input')}.", param=param
        ),
        request,
    )


class CorsFromSettings:
    """CORS from `CORS_ORIGINS`, decided on first request (settings are read lazily)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._wrapped: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._wrapped is None:
            try:
                origins = runtime.settings().cors_origins
            except SettingsError:
                origins = ()
            self._wrapped = (
                CORSMiddleware(
                    self.app,
                    allow_origins=list(origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=["Authorization", "Content-Type"],
                    expose_headers=["X-Request-ID"],
                )
                if origins
                else self.app
            )
        await self._wrapped(scope, receive, send)


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
            if self._streaming:
                self._started = True
                await self._send(self._start)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            if self._streaming:
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
        try:
            self._write_audit(status)
        except GatewayError as exc:
            logger.error(
                "audit write failed",
                extra={"request_id": self._exchange.request_id, "error": exc.message},
            )
        self._log(status)

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
        try:
            self._write_audit(status)
        except GatewayError as exc:
            logger.error(
                "audit write failed",
                extra={"request_id": self._exchange.request_id, "error": exc.message},
            )
            if self._streaming or not _fail_open():
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
                    self._request_body, store_images=config.audit_store_images
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
        latency_ms = round((time.perf_counter() - exchange.started) * 1000, 3)
        log_access(
            request_id=exchange.request_id,
            method=exchange.method,
            path=exchange.path,
            status=status,
            user=exchange.identity.subject if exchange.identity else None,
            model=exchange.model,
            latency_ms=latency_ms,
            upstream_latency_ms=exchange.upstream_latency_ms,
            tokens_prompt=exchange.tokens_prompt,
            tokens_completion=exchange.tokens_completion,
            error_type=exchange.error_type,
        )
        emit_request_metrics(
            function=exchange.function,
            status=status,
            latency_ms=latency_ms,
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


__all__ = [
    "Caller",
    "Exchange",
    "authenticated",
    "create_app",
    "error_body",
    "lambda_handler",
    "read_json",
]
