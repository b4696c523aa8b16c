"""How the local API writes a response: Content-Length framing, and nothing a handler returns can
split it."""

from __future__ import annotations

import pytest

from localapi.events import HttpResponse
from localapi.http11 import encode_response

DATE = b"Mon, 23 Nov 2026 22:00:00 GMT"


def test_a_response_is_framed_by_its_true_length() -> None:
    response = HttpResponse(
        200,
        [("content-type", "application/json"), ("content-length", "1"), ("x-a", "1")],
        b'{"ok": true}',
    )

    data = encode_response(response, date=DATE, keep_alive=True)

    head, body = data.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK",
        b"content-type: application/json",
        b"x-a: 1",
        b"content-length: 12",
        b"date: " + DATE,
    ]
    assert body == b'{"ok": true}'


def test_closing_and_head_and_bodiless_statuses() -> None:
    closing = encode_response(HttpResponse(404, [], b"{}"), date=DATE, keep_alive=False)
    head = encode_response(HttpResponse(200, [], b"{}"), date=DATE, keep_alive=True, head=True)
    empty = encode_response(HttpResponse(204, [], b""), date=DATE, keep_alive=True)

    assert b"\r\nconnection: close\r\n" in closing and closing.endswith(b"\r\n\r\n{}")
    assert b"content-length: 2\r\n" in head and head.endswith(b"\r\n\r\n")
    assert b"content-length" not in empty


@pytest.mark.parametrize(
    "header",
    [
        ("x-split", "a\r\nset-cookie: evil=1"),
        ("x-nul", "a\x00b"),
        ("bad name", "1"),
        ("x-wide", "\u2603"),
    ],
)
def test_a_header_http_cannot_carry_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_response(HttpResponse(200, [header], b""), date=DATE, keep_alive=True)
