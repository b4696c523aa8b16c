"""The translation rules of docs/compatibility.md, table-driven from tests/unit/cases/*.json.

requests.json: OpenAI request bodies -> the exact Ollama `/api/chat` body, or the 400 it earns.
responses.json: Ollama answers -> the OpenAI `chat.completion`, or the 502 a malformed one earns.
streams.json: Ollama stream objects -> `chat.completion.chunk`s and the assembled completion.
models.json: `/api/tags` -> the OpenAI model list, and model lookup by name or alias.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simpleai.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
)
from simpleai.translate import (
    SSE_DONE,
    StreamTranslator,
    find_model,
    from_ollama_chat,
    new_call_id,
    new_completion_id,
    sse_event,
    to_model_list,
    to_ollama_chat,
)

CASES = Path(__file__).parent / "cases"
DEFAULT_MODEL = "llama3.2"


def cases(name: str) -> list[Any]:
    table = json.loads((CASES / name).read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["name"]) for case in table]


def counting_ids() -> Callable[[], str]:
    """Deterministic call ids for the tables (production ids are random)."""
    counter = itertools.count(1)
    return lambda: f"call_{next(counter)}"


def at_path(value: Any, path: str) -> Any:
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def assert_paths(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for path, wanted in expected.items():
        assert at_path(actual, path) == wanted, path


def test_the_tables_hold_at_least_forty_cases() -> None:
    total = sum(len(json.loads(path.read_text())) for path in CASES.glob("*.json"))
    assert total >= 40


@pytest.mark.parametrize("case", cases("requests.json"))
def test_request(case: dict[str, Any]) -> None:
    def translate() -> Any:
        return to_ollama_chat(
            case["body"], default_model=DEFAULT_MODEL, aliases=case.get("aliases")
        )

    if "error" in case:
        with pytest.raises(InvalidRequestError) as raised:
            translate()
        error = raised.value
        assert error.status == 400
        assert error.to_body()["error"]["type"] == "invalid_request_error"
        assert error.param == case["error"]["param"]
        assert case["error"].get("contains", "") in error.message
        if "code" in case["error"]:
            assert error.code == case["error"]["code"]
        return
    chat = translate()
    expect = case["expect"]
    assert chat.request == expect["request"]
    assert chat.model == expect.get("model", chat.model)
    assert chat.stream == expect.get("stream", False)
    assert chat.include_usage == expect.get("include_usage", False)
    json.dumps(chat.request)  # what goes upstream is plain JSON


PADDED_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
"""RFC 4648's base64 with its padding, what Ollama's decoder (Go's StdEncoding) takes. Stricter
than Python's `b64decode(validate=True)`, which lets excess padding through ("AAAA=")."""


def image_request(data: str) -> dict[str, Any]:
    url = f"data:image/png;base64,{data}"
    part = {"type": "image_url", "image_url": {"url": url}}
    return {"messages": [{"role": "user", "content": [part]}]}


def accepts_image(data: str) -> bool:
    try:
        to_ollama_chat(image_request(data), default_model=DEFAULT_MODEL)
    except InvalidRequestError as exc:
        assert "base64" in exc.message
        return False
    return True


def is_padded_base64(data: str) -> bool:
    """The oracle, on the data as the translation sees it (the URL's ends are trimmed)."""
    data = data.rstrip()
    return bool(data) and PADDED_BASE64.fullmatch(data) is not None


EDGE_BASE64 = [
    *("", "=", "==", "===", "====", "A", "AA", "AAA", "AAAA", "AA==", "AAA=", "A===", "AAAAA"),
    *("AAAA=", "AAAA====", "AA=A", "A=AA", "=AAA", "AA==AAAA", "AA\nAA", " AAAA", "AAAA "),
    *("AA-_", "QUJD", "QUI=", "QQ==", "QR==", "Q\u00e9==", "++//", "AAAA\x00", "\u0661AAA"),
]


@pytest.mark.parametrize("data", EDGE_BASE64)
def test_an_image_is_accepted_exactly_when_it_is_padded_base64(data: str) -> None:
    assert accepts_image(data) == is_padded_base64(data)


def test_random_strings_from_the_alphabet_agree_with_the_grammar() -> None:
    rng = random.Random(8)
    symbols = "AZaz09+/=-_ \n"
    for _ in range(3000):
        data = "".join(rng.choice(symbols) for _ in range(rng.randrange(1, 13)))
        assert accepts_image(data) == is_padded_base64(data), repr(data)


def test_a_real_image_in_base64_is_accepted() -> None:
    assert accepts_image(base64.b64encode(bytes(range(256)) * 3 + b"x").decode())


@pytest.mark.parametrize("case", cases("responses.json"))
def test_response(case: dict[str, Any]) -> None:
    def translate() -> dict[str, Any]:
        return from_ollama_chat(
            case["answer"],
            model=case.get("model", "llama3.2"),
            completion_id="chatcmpl-test",
            new_call_id=counting_ids(),
        )

    if "error" in case:
        with pytest.raises(UpstreamError) as raised:
            translate()
        assert raised.value.status == 502
        assert case["error"] in raised.value.message
        return
    completion = translate()
    if "expect" in case:
        assert completion == case["expect"]
    assert_paths(completion, case.get("expect_path", {}))
    assert completion["choices"][0]["finish_reason"] in {"stop", "length", "tool_calls"}


@pytest.mark.parametrize("case", cases("streams.json"))
def test_stream(case: dict[str, Any]) -> None:
    translator = StreamTranslator(
        model="llama3.2",
        completion_id="chatcmpl-test",
        include_usage=case.get("include_usage", False),
        new_call_id=counting_ids(),
    )

    if "error" in case:
        with pytest.raises(UpstreamError) as raised:
            for item in case["items"]:
                translator.translate(item)
        assert case["error"] in raised.value.message
        return
    chunks = [chunk for item in case["items"] for chunk in translator.translate(item)]

    assert translator.done
    assert [_shape(chunk) for chunk in chunks] == case["chunks"]
    assert {(chunk["id"], chunk["created"], chunk["model"]) for chunk in chunks} == {
        ("chatcmpl-test", chunks[0]["created"], "llama3.2")
    }
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    if case.get("include_usage"):
        assert all(chunk["usage"] is None for chunk in chunks[:-1])
    else:
        assert all("usage" not in chunk for chunk in chunks)
    completion = translator.completion()
    if "completion" in case:
        assert completion == case["completion"]
    assert_paths(completion, case.get("completion_path", {}))


def _shape(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk reduced to what the tables state: its delta and finish reason, or its usage."""
    if not chunk["choices"]:
        return {"usage": chunk["usage"]}
    (choice,) = chunk["choices"]
    assert choice["index"] == 0
    shape: dict[str, Any] = {"delta": choice["delta"]}
    if choice["finish_reason"] is not None:
        shape["finish_reason"] = choice["finish_reason"]
    return shape


@pytest.mark.parametrize("case", cases("models.json"))
def test_models(case: dict[str, Any]) -> None:
    def translate() -> Any:
        if "find" in case:
            return find_model(case["tags"], case["find"], case.get("aliases"))
        return to_model_list(case["tags"], case.get("aliases"))

    if "error" in case:
        with pytest.raises(UpstreamError) as raised:
            translate()
        assert case["error"] in raised.value.message
        return
    assert translate() == case["expect"]


def test_a_stream_that_has_not_finished_assembles_what_it_has_without_a_finish_reason() -> None:
    translator = StreamTranslator(model="m", completion_id="chatcmpl-x")
    translator.translate({"message": {"role": "assistant", "content": "partial"}, "done": False})

    assert not translator.done
    completion = translator.completion()
    assert completion["choices"][0]["message"]["content"] == "partial"
    assert completion["choices"][0]["finish_reason"] is None
    assert completion["usage"] is None


def test_chunks_are_server_sent_events_ending_with_done() -> None:
    frame = sse_event({"id": "chatcmpl-x", "choices": [{"delta": {"content": "é\n"}}]})

    assert frame == b'data: {"id":"chatcmpl-x","choices":[{"delta":{"content":"\xc3\xa9\\n"}}]}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_an_error_is_an_error_event_carrying_an_openai_error_object() -> None:
    error = UpstreamTimeoutError("Ollama stopped answering mid-stream.")

    frame = sse_event(error.to_body(), event="error")

    assert frame.startswith(b"event: error\ndata: ")
    assert frame.endswith(b"\n\n")
    body = json.loads(frame.split(b"data: ", 1)[1])
    assert body == {
        "error": {
            "message": "Ollama stopped answering mid-stream.",
            "type": "timeout_error",
            "param": None,
            "code": None,
        }
    }


def test_ids_are_random_and_prefixed_never_counters() -> None:
    completion_ids = {new_completion_id() for _ in range(200)}
    call_ids = {new_call_id() for _ in range(200)}

    assert len(completion_ids) == 200 and len(call_ids) == 200
    assert all(i.startswith("chatcmpl-") and len(i) > 20 for i in completion_ids)
    assert all(i.startswith("call_") and len(i) > 20 for i in call_ids)


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, ["user"], {"a": 1}, "auto"]


def _mutated(value: Any, rng: random.Random) -> Any:
    """`value` with one nested member replaced by an odd value of another type."""
    if isinstance(value, dict | list) and value and rng.random() < 0.7:
        copy: Any = dict(value) if isinstance(value, dict) else list(value)
        key = rng.choice(list(copy)) if isinstance(copy, dict) else rng.randrange(len(copy))
        copy[key] = _mutated(copy[key], rng) if rng.random() < 0.6 else rng.choice(ODD_VALUES)
        return copy
    return rng.choice(ODD_VALUES)


def test_mangled_input_only_ever_raises_gateway_errors() -> None:
    # GIVEN every table's inputs, each mangled many ways (seeded: the same run every time)
    rng = random.Random(3)
    tables = {name: json.loads((CASES / name).read_text()) for name in CASES.glob("*.json")}
    translations: dict[str, Callable[[Any], Any]] = {
        "requests.json": lambda case: to_ollama_chat(
            _mutated(case["body"], rng), default_model="m", aliases={"a": "b"}
        ),
        "responses.json": lambda case: from_ollama_chat(
            _mutated(case["answer"], rng), model="m", completion_id="c"
        ),
        "streams.json": lambda case: _translate_stream(_mutated(case["items"], rng)),
        "models.json": lambda case: (
            find_model(_mutated(case["tags"], rng), "llama3.2", {"a": "llama3.2"})
            and to_model_list(_mutated(case["tags"], rng), {"a": "llama3.2"})
        ),
    }
    # WHEN they are translated THEN they succeed or fail as a GatewayError (a clear 4xx/5xx)
    for path, table in tables.items():
        for _ in range(300):
            with contextlib.suppress(GatewayError):
                translations[path.name](rng.choice(table))


def _translate_stream(items: Any) -> None:
    translator = StreamTranslator(model="m", completion_id="c", include_usage=True)
    for item in items if isinstance(items, list) else [items]:
        translator.translate(item)
    json.dumps(translator.completion())
