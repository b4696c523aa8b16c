"""The audit rows the real handlers write: every outcome, nothing secret, images and large
answers reduced, and a request refused when its row cannot be written."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from localapi.template import load_handler, read_application
from simpleai import runtime
from simpleai.audit import redaction
from simpleai.audit.chain import GENESIS
from simpleai.settings import Settings
from simpleai.webapp import create_app
from tests.support.fake_ollama import FakeOllama, Fault, Reply

Invoke = Callable[..., dict[str, Any]]
Rows = Callable[[], list[dict[str, Any]]]
FUNCTIONS = read_application(Path(__file__).resolve().parents[2] / "template.yaml").functions
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def image_request(data: bytes = PNG) -> dict[str, Any]:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                ],
            }
        ]
    }


def test_every_outcome_leaves_one_row_on_one_chain(
    invoke: Invoke, fake_ollama: FakeOllama, audit_rows: Rows, gateway: Settings
) -> None:
    fake_ollama.queue(Reply(content="Hi."), Fault(status=500, error="runner died"))

    outcomes = [
        invoke("chat", "chat"),  # success
        invoke("chat", "chat", raw_body="{not json"),  # bad input
        invoke("chat", "chat", headers={"authorization": "Bearer not-a-jwt"}),  # refused token
        invoke("chat", "chat"),  # upstream failure
    ]

    rows = audit_rows()
    assert [result["statusCode"] for result in outcomes] == [200, 400, 401, 502]
    assert [row["response_status"] for row in rows] == [200, 400, 401, 502]
    assert [row["error_type"] for row in rows] == [
        None,
        "invalid_request_error",
        "authentication_error",
        "upstream_error",
    ]
    assert [row["user_id"] for row in rows] == ["alice", "alice", None, "alice"]
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS
    assert runtime.components().audit.verify().ok


def test_a_streamed_response_is_recorded_whole(gateway: Settings, audit_rows: Rows) -> None:
    app = create_app("streaming test")

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            for word in ("one", "two", "three"):
                yield f"data: {word}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    with TestClient(app) as client:
        response = client.post("/stream", json={"stream": True})

    assert response.status_code == 200
    (row,) = audit_rows()
    assert row["response_body"] == "data: one\n\ndata: two\n\ndata: three\n\n"
    assert row["request_body"] == '{"stream":true}'


def test_a_wrong_method_is_a_405_naming_the_allowed_one(
    gateway: Settings, audit_rows: Rows
) -> None:
    chat = load_handler(dataclasses.replace(FUNCTIONS["ChatFunction"], handler="app.app"))

    with TestClient(chat) as client:
        response = client.get("/v1/chat/completions")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    (row,) = audit_rows()
    assert (row["method"], row["response_status"]) == ("GET", 405)


def test_no_token_reaches_the_database_file(
    invoke: Invoke, token: Callable[..., str], gateway: Settings, audit_rows: Rows
) -> None:
    accepted, refused = token("alice"), token("bob", client_id="someone-else")

    invoke("chat", "chat", headers={"authorization": f"Bearer {accepted}"})
    invoke("chat", "chat", headers={"authorization": f"Bearer {refused}"})
    invoke("chat", "models", headers={"authorization": f"Bearer {accepted}"})

    assert len(audit_rows()) == 3
    runtime.configure(None)  # drop the open connection's claim on the files
    database = gateway.database_path
    files = [database, *database.parent.glob(database.name + "-*")]
    contents = b"".join(path.read_bytes() for path in files)
    assert b"alice" in contents  # the search does look at the rows
    for secret in (accepted, refused):
        assert secret.encode() not in contents
        assert secret.rsplit(".", 1)[-1].encode() not in contents  # not even the signature
    assert b"Bearer" not in contents


def test_images_are_kept_as_hash_size_and_type(invoke: Invoke, audit_rows: Rows) -> None:
    invoke("chat", "chat", body=image_request())

    (row,) = audit_rows()
    stored = json.loads(row["request_body"])
    part = stored["messages"][0]["content"][1]
    assert part == {
        "type": "image_url",
        "image_url": {
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "bytes": len(PNG),
            "media_type": "image/png",
            "detail": "low",
        },
    }
    assert base64.b64encode(PNG).decode()[:40] not in row["request_body"]


def test_an_image_request_is_parsed_once(
    invoke: Invoke, audit_rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SecondParse:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("the redaction parsed the request body again")

    monkeypatch.setattr(redaction, "json", SecondParse)

    result = invoke("chat", "chat", body=image_request())

    assert result["statusCode"] == 200
    (row,) = audit_rows()
    assert json.loads(row["request_body"])["messages"][0]["content"][1]["image_url"][
        "bytes"
    ] == len(PNG)


def test_images_are_kept_whole_when_asked(
    invoke: Invoke, audit_rows: Rows, make_settings: Callable[..., Settings]
) -> None:
    runtime.configure(make_settings(audit_store_images=True))

    invoke("chat", "chat", body=image_request())

    (row,) = audit_rows()
    assert base64.b64encode(PNG).decode() in row["request_body"]


def test_a_long_answer_is_truncated_and_flagged(
    invoke: Invoke,
    fake_ollama: FakeOllama,
    audit_rows: Rows,
    make_settings: Callable[..., Settings],
) -> None:
    runtime.configure(make_settings(audit_max_body_bytes=2048))
    fake_ollama.queue(Reply(content="é" * 5000))  # two bytes each: cut on a character boundary

    result = invoke("chat", "chat")

    (row,) = audit_rows()
    assert len(result["body"].encode()) > 10_000  # the caller still gets it all
    assert row["response_truncated"] == 1
    stored = row["response_body"].encode()
    assert 2040 <= len(stored) <= 2048
    assert result["body"].encode().startswith(stored)


def test_a_short_answer_is_not_flagged(invoke: Invoke, audit_rows: Rows) -> None:
    invoke("chat", "chat")

    (row,) = audit_rows()
    assert row["response_truncated"] == 0


def refuse_inserts(settings: Settings) -> None:
    """Make every audit insert fail from now on, as a full or broken volume would."""
    runtime.components()  # the database exists and is migrated
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def test_a_failed_audit_write_refuses_the_request(
    invoke: Invoke, gateway: Settings, fake_ollama: FakeOllama
) -> None:
    refuse_inserts(gateway)

    result = invoke("chat", "chat")

    assert result["statusCode"] == 503
    error = json.loads(result["body"])["error"]
    assert error["type"] == "audit_unavailable"
    assert "You said" not in result["body"]  # the answer Ollama gave never leaves


def test_fail_open_lets_the_request_through_when_the_audit_write_fails(
    invoke: Invoke, make_settings: Callable[..., Settings], audit_rows: Rows
) -> None:
    settings = make_settings(audit_fail_open=True)
    runtime.configure(settings)
    refuse_inserts(settings)

    result = invoke("chat", "chat")

    assert result["statusCode"] == 200
    assert json.loads(result["body"])["choices"][0]["message"]["content"] == "You said: Say hello."
    assert audit_rows() == []
