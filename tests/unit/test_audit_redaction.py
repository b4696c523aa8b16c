"""What of a request and a response the audit log keeps (pure functions, no I/O)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest

from simpleai.audit.redaction import image_placeholder, redact_request_body, truncate_response

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


def test_a_body_without_images_is_kept_byte_for_byte() -> None:
    body = b'{"messages": [{"role": "user", "content": "hi"}],   "model": "x"}'

    assert redact_request_body(body) == body.decode()


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"just a string"'])
def test_a_body_that_is_not_a_chat_request_is_kept(body: bytes) -> None:
    assert redact_request_body(body) == body.decode()


def test_a_body_nested_past_the_parsers_limit_is_kept() -> None:
    body = b"[" * 100_000 + b"]" * 100_000

    assert redact_request_body(body) == body.decode()


def test_an_empty_body_is_none() -> None:
    assert redact_request_body(b"") is None


def test_ollama_style_image_lists_are_replaced() -> None:
    body = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "see", "images": [base64.b64encode(JPEG).decode()]}
            ]
        }
    ).encode()

    stored = json.loads(redact_request_body(body) or "")

    assert stored["messages"][0]["images"] == [
        {"sha256": hashlib.sha256(JPEG).hexdigest(), "bytes": len(JPEG), "media_type": "image/jpeg"}
    ]


def test_an_image_key_spelled_with_json_escapes_is_still_replaced() -> None:
    data_url = "data:;base64," + base64.b64encode(JPEG).decode()
    body = (
        '{"messages": [{"role": "user", "content": [{"type": "\\u0069mage_url", '
        '"\\u0069mage_url": {"url": "' + data_url + '"}}]}]}'
    ).encode()
    assert b"image" not in body

    stored = json.loads(redact_request_body(body) or "")

    part = stored["messages"][0]["content"][0]
    assert part["image_url"]["sha256"] == hashlib.sha256(JPEG).hexdigest()


def chat_with_images(*images: bytes) -> dict[str, Any]:
    parts = [
        {
            "type": "image_url",
            "image_url": {"url": "data:;base64," + base64.b64encode(image).decode()},
        }
        for image in images
    ]
    return {
        "model": "llava",
        "messages": [
            {"role": "system", "content": "Describe."},
            {"role": "user", "content": [{"type": "text", "text": "this:"}, *parts]},
            {"role": "user", "content": "and", "images": [base64.b64encode(JPEG).decode()]},
        ],
    }


def test_the_routes_parse_is_redacted_as_the_body_would_be_and_left_as_it_was() -> None:
    request = chat_with_images(JPEG, b"GIF89a" + bytes(50))
    body = json.dumps(request).encode()
    before = copy.deepcopy(request)

    assert redact_request_body(body, parsed=request) == redact_request_body(body)
    assert request == before  # the placeholders went into copies


def test_the_routes_parse_is_used_rather_than_a_second_parse() -> None:
    body = json.dumps(chat_with_images(JPEG)).encode()
    other = b"\x89PNG\r\n\x1a\n" + bytes(20)

    stored = json.loads(redact_request_body(body, parsed=chat_with_images(other)) or "")

    part = stored["messages"][1]["content"][1]
    assert part["image_url"]["sha256"] == hashlib.sha256(other).hexdigest()


def test_a_parsed_body_without_images_is_kept_byte_for_byte() -> None:
    body = b'{"messages": [{"role": "user", "content": "an image of a cat?"}]}'

    assert redact_request_body(body, parsed=json.loads(body)) == body.decode()


def test_a_remote_image_url_is_a_reference_and_is_kept() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    body = json.dumps({"messages": [{"role": "user", "content": [part]}]}).encode()

    assert redact_request_body(body) == body.decode()


def test_store_images_keeps_them() -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    body = json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": url}]}]}
    ).encode()

    assert redact_request_body(body, store_images=True) == body.decode()
    assert "base64" not in (redact_request_body(body) or "")


def test_unknown_bytes_are_octet_stream() -> None:
    assert image_placeholder(b"plain")["media_type"] == "application/octet-stream"


def test_truncation_counts_bytes_and_never_splits_a_character() -> None:
    text, truncated = truncate_response("ab" + "€" * 10, 6)  # € is three bytes

    assert (text, truncated) == ("ab€", True)


def test_text_within_the_limit_is_untouched() -> None:
    assert truncate_response("€" * 3, 9) == ("€" * 3, False)
