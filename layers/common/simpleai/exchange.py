"""What the gateway learns about one request while serving it, for its audit row and log line."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.types import Scope

from simpleai.audit.redaction import NOT_PARSED
from simpleai.auth import Identity


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
    request_json: Any = NOT_PARSED
    """The request body as the route parsed it (`read_json`), for the audit's redaction."""
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
