"""What every function's FastAPI app shares: the app factory with the audit middleware and CORS,
the one error renderer, authentication (with rate limits) and the Lambda entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from simpleai import __version__, runtime
from simpleai.auditing import AuditMiddleware
from simpleai.auth import Identity
from simpleai.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientScopeError,
    InvalidRequestError,
    MethodNotAllowedError,
    MissingTokenError,
    NotFoundError,
    PermissionDeniedError,
)
from simpleai.exchange import Exchange, exchange_of
from simpleai.observability import logger, tracer
from simpleai.quota import assess, window_starts
from simpleai.settings import Settings, SettingsError


async def authenticated(request: Request) -> Identity:
    """The caller's verified identity, or a 401/403/429/503; every route's first call."""
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


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or a 400 saying why not."""
    body = await request.body()
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestError(
            "The request body is not valid JSON." if body else "The request body is empty."
        ) from exc
    exchange_of(request).request_json = parsed  # the audit's redaction need not parse it again
    return parsed


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity: Python's parser takes them, but they are not JSON and cannot be sent on."""
    raise ValueError(f"{name} is not a JSON number")


def create_app(title: str) -> FastAPI:
    """A FastAPI app with the gateway's error rendering, CORS and audit middleware."""
    app = FastAPI(
        title=title,
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # Tracing is X-Ray's, through Powertools (TRACING_ENABLED): FastAPI's own OpenTelemetry
        # would otherwise look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
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

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal traced
        # What correlation_paths.API_GATEWAY_HTTP finds, without a JMESPath search per call.
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
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
        # With the Allow header in which Starlette's router names the route's methods.
        error = MethodNotAllowedError(
            f"Method {request.method} is not allowed here.", headers=exc.headers
        )
    else:
        error = InvalidRequestError(str(exc.detail))
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
    """CORS from `CORS_ORIGINS`, decided when settings are first read (lazily, at the first
    request) and again whenever `runtime.configure` replaces them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._wrapped: ASGIApp = app
        self._decided_for: Settings | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            settings = runtime.settings()
        except SettingsError:
            settings = None  # the request itself reports the configuration error
        if settings is not None and settings is not self._decided_for:
            self._decided_for = settings
            origins = settings.cors_origins
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


__all__ = [
    "Exchange",
    "authenticated",
    "create_app",
    "exchange_of",
    "lambda_handler",
    "read_json",
]
