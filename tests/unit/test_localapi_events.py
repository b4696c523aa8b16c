"""The local API's routing and its API Gateway HTTP API (payload 2.0) translation."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from localapi.events import HttpRequest, build_event, to_response
from localapi.template import read_application

ROOT = Path(__file__).resolve().parents[2]
APP = read_application(ROOT / "template.yaml")


@pytest.mark.parametrize(
    ("method", "path", "function", "parameters"),
    [
        ("POST", "/chat/completions", "ChatFunction", {}),
        ("POST", "/v1/chat/completions", "ChatFunction", {}),
        ("GET", "/v1/models", "ChatFunction", {}),
        ("GET", "/models", "ChatFunction", {}),
        ("GET", "/v1/models/llama3.2:latest", "ChatFunction", {"model": "llama3.2:latest"}),
        ("GET", "/v1/models/hf.co/org/model:Q4", "ChatFunction", {"model": "hf.co/org/model:Q4"}),
        ("GET", "/health", "HealthFunction", {}),
    ],
)
def test_routes_come_from_the_template(
    method: str, path: str, function: str, parameters: dict[str, str]
) -> None:
    found = APP.match(method, path)

    assert found is not None
    route, params = found
    assert (route.function, params) == (function, parameters)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/chat/completions"), ("GET", "/v2/x"), ("DELETE", "/health"), ("GET", "/v1/models/")],
)
def test_unrouted_requests_match_nothing(method: str, path: str) -> None:
    assert APP.match(method, path) is None


def test_handlers_come_from_the_image_command() -> None:
    chat = APP.functions["ChatFunction"]

    assert chat.handler == "app.handler"
    assert chat.code_dir == ROOT / "functions" / "chat"


def request(**overrides: object) -> HttpRequest:
    values: dict[str, object] = {
        "method": "POST",
        "path": "/chat/completions",
        "query_string": "a=1&a=2&b=",
        "headers": [
            ("Host", "api.local"),
            ("X-Tag", "one"),
            ("x-tag", "two"),
            ("Cookie", "s=1; t=2"),
            ("Content-Type", "application/json"),
        ],
        "body": b'{"messages": []}',
        "source_ip": "192.0.2.1",
    }
    values.update(overrides)
    return HttpRequest(**values)  # type: ignore[arg-type]


def test_event_follows_payload_format_2() -> None:
    route, params = APP.match("POST", "/chat/completions")  # type: ignore[misc]

    event = build_event(request(), route, params)

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /chat/completions"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"]["x-tag"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["body"] == '{"messages": []}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/chat/completions",
        "protocol": "HTTP/1.1",
        "sourceIp": "192.0.2.1",
        "userAgent": "",
    }
    assert context["requestId"]
    assert context["stage"] == "$default"


def test_binary_bodies_are_base64_encoded() -> None:
    route, params = APP.match("POST", "/chat/completions")  # type: ignore[misc]
    raw = bytes(range(256))

    event = build_event(
        request(body=raw, headers=[("content-type", "application/octet-stream")]), route, params
    )

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_a_text_body_that_is_not_utf8_travels_base64_encoded() -> None:
    route, params = APP.match("POST", "/chat/completions")  # type: ignore[misc]
    raw = b'{"text": "\xff\xfe"}'

    event = build_event(request(body=raw), route, params)

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_request_ids_are_unique() -> None:
    route, params = APP.match("GET", "/health")  # type: ignore[misc]
    ids = {
        build_event(request(method="GET", path="/health"), route, params)["requestContext"][
            "requestId"
        ]
        for _ in range(50)
    }

    assert len(ids) == 50


def test_structured_results_become_responses() -> None:
    response = to_response(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "cookies": ["c=1"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )

    assert response.status == 201
    assert ("x-a", "1") in response.headers
    assert ("set-cookie", "c=1") in response.headers
    assert response.body == b"\x00\x01"


def test_a_result_without_status_code_is_a_json_body() -> None:
    response = to_response({"hello": "world"})

    assert (response.status, json.loads(response.body)) == (200, {"hello": "world"})
