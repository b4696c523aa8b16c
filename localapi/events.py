"""API Gateway HTTP API payload 2.0: requests into events, Lambda results back into responses.

Follows the "Working with AWS Lambda proxy integrations for HTTP APIs" page of the API Gateway
developer guide: duplicate headers and query parameters are joined with commas, cookies move to
`cookies`, binary bodies are base64-encoded, and a result without `statusCode` is a JSON body.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from localapi.template import Function, Route

TEXT_TYPES = (
    "text/",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
)


@dataclass
class HttpRequest:
    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def build_event(
    request: HttpRequest,
    route: Route,
    path_parameters: dict[str, str],
    *,
    stage: str = "$default",
    api_id: str = "localapi",
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    query: dict[str, str] = {}
    if request.query_string:
        for name, value in parse_qsl(request.query_string, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
    body: str | None = None
    is_text = headers.get("content-type", "").startswith(TEXT_TYPES)
    if request.body and is_text:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False  # not text after all: it travels base64-encoded, as binary does
    if request.body and not is_text:
        body = base64.b64encode(request.body).decode("ascii")
    now = time.time()
    host = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.path,
        "rawQueryString": request.query_string,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": stage,
            "time": _request_time(int(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": body is not None and not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    return event


_formatted_second: tuple[int, str] = (0, "")


def _request_time(second: int) -> str:
    """`requestContext.time`, formatted once a second rather than per request."""
    global _formatted_second
    cached = _formatted_second
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"))
        _formatted_second = cached  # one assignment: threads see the old or the new pair
    return cached[1]


def to_response(result: Any) -> HttpResponse:
    """A Lambda result as API Gateway turns it into an HTTP response (payload format 2.0)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpResponse(
            200, [("content-type", "application/json")], json.dumps(result).encode()
        )
    headers = [(name.lower(), str(value)) for name, value in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name.lower(), str(value)) for value in values)
    headers.extend(("set-cookie", cookie) for cookie in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return HttpResponse(int(result["statusCode"]), headers, raw)


def gateway_error(status: int, message: str) -> HttpResponse:
    """API Gateway's own answers: `{"message": "Not Found"}` and the like."""
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps({"message": message}).encode()
    )


@dataclass
class LambdaContext:
    """The context object the Python runtime hands a handler."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def context_for(function: Function) -> LambdaContext:
    return LambdaContext(
        function_name=function.logical_id,
        memory_limit_in_mb=function.memory,
        timeout_seconds=function.timeout,
    )
