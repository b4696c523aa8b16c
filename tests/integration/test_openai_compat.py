"""The official `openai` client against the local API (our `sam local start-api`), the Ollama
stand-in behind it: what issue 3 promises any OpenAI client, end to end, audit row included."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from simpleai import runtime
from simpleai.settings import Settings
from tests.support.fake_ollama import FakeOllama, Fault, Reply

Rows = Callable[[], list[dict[str, Any]]]
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(local_api: str, token: Callable[..., str]) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{local_api}/v1", api_key=token("alice"), max_retries=0, timeout=20
    )


@pytest.fixture
def reconfigure(make_settings: Callable[..., Settings]) -> Callable[..., None]:
    """Serve the rest of the test with other settings (the local API reads them per call)."""

    def apply(**overrides: Any) -> None:
        runtime.configure(make_settings(**overrides))

    return apply


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event a stalled fake Ollama waits on; set at the end so its thread finishes."""
    event = threading.Event()
    yield event
    event.set()


def user(text: str) -> Any:
    return {"role": "user", "content": text}


# Chat -----------------------------------------------------------------------------------------


def test_plain_chat(client: openai.OpenAI, fake_ollama: FakeOllama, audit_rows: Rows) -> None:
    completion = client.chat.completions.create(
        model="llama3.2", messages=[user("Hello")], temperature=0.3, max_tokens=50
    )

    assert completion.object == "chat.completion"
    assert completion.model == "llama3.2"
    assert completion.choices[0].message.content == "You said: Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 19
    sent = fake_ollama.requests[-1]
    assert sent["stream"] is False
    assert sent["options"] == {"temperature": 0.3, "num_predict": 50}
    (row,) = audit_rows()
    assert (row["model_used"], row["stream"], row["finish_reason"]) == ("llama3.2", 0, "stop")
    assert row["upstream_latency_ms"] > 0


def test_an_alias_reaches_its_target_and_the_caller_sees_its_own_name(
    client: openai.OpenAI,
    fake_ollama: FakeOllama,
    audit_rows: Rows,
    reconfigure: Callable[..., None],
) -> None:
    reconfigure(model_aliases={"gpt-4o-mini": "llama3.2"})

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[user("Hi")])

    assert completion.model == "gpt-4o-mini"
    assert fake_ollama.requests[-1]["model"] == "llama3.2"
    assert audit_rows()[-1]["model_used"] == "llama3.2"


def test_full_tool_round_trip(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    # GIVEN a model that first calls a tool, then answers from its result
    fake_ollama.queue(
        Reply(tool_calls=[{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]),
        Reply(content="It is sunny in Paris."),
    )
    messages: list[Any] = [user("What is the weather in Paris?")]

    # WHEN the client runs the call and sends the result back
    first = client.chat.completions.create(
        model="llama3.2", messages=messages, tools=[WEATHER_TOOL]
    )
    call_message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert call_message.content is None
    (call,) = call_message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages.append(call_message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'})
    final = client.chat.completions.create(
        model="llama3.2", messages=messages, tools=[WEATHER_TOOL]
    )

    # THEN the final answer arrives and Ollama saw the conversation in its own terms
    assert final.choices[0].message.content == "It is sunny in Paris."
    assert final.choices[0].finish_reason == "stop"
    assert fake_ollama.requests[0]["tools"] == [WEATHER_TOOL]
    assistant, tool = fake_ollama.requests[1]["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": call.id, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    }
    assert tool == {
        "role": "tool",
        "content": '{"sky": "sunny"}',
        "tool_call_id": call.id,
        "tool_name": "get_weather",
    }


def test_json_mode(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    fake_ollama.queue(Reply(content='{"colour": "blue"}'))

    completion = client.chat.completions.create(
        model="llama3.2",
        messages=[user("What colour is the sky? Answer in JSON.")],
        response_format={"type": "json_object"},
    )

    assert json.loads(completion.choices[0].message.content or "") == {"colour": "blue"}
    assert fake_ollama.requests[-1]["format"] == "json"


def test_json_schema(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    fake_ollama.queue(Reply(content='{"age": 22}'))

    completion = client.chat.completions.create(
        model="llama3.2",
        messages=[user("How old?")],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )

    assert json.loads(completion.choices[0].message.content or "") == {"age": 22}
    assert fake_ollama.requests[-1]["format"] == schema


def test_image_part(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    fake_ollama.queue(Reply(content="A single pixel."))

    completion = client.chat.completions.create(
        model="llava",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )

    assert completion.choices[0].message.content == "A single pixel."
    assert fake_ollama.requests[-1]["messages"] == [
        {"role": "user", "content": "What is in this image?", "images": [PNG]}
    ]


def test_an_image_url_is_refused_not_fetched(
    client: openai.OpenAI, fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="llava",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/cat.png"}}
                    ],
                }
            ],
        )

    error = raised.value
    assert error.status_code == 400
    assert error.body["param"] == "messages[0].content[0].image_url.url"  # type: ignore[index]
    assert error.body["code"] == "image_url_not_supported"  # type: ignore[index]
    assert fake_ollama.requests == []
    assert audit_rows()[-1]["error_type"] == "invalid_request_error"


def test_n_above_one_is_refused_with_its_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="llama3.2", messages=[user("Hi")], n=2)

    assert raised.value.body["param"] == "n"  # type: ignore[index]


# Streaming ------------------------------------------------------------------------------------


def test_streaming_with_include_usage(
    client: openai.OpenAI, fake_ollama: FakeOllama, audit_rows: Rows
) -> None:
    fake_ollama.queue(Reply(content="The sky is blue.", chunks=4, eval_count=5))

    stream = client.chat.completions.create(
        model="llama3.2",
        messages=[user("Why is the sky blue?")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert fake_ollama.requests[-1]["stream"] is True
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 4 and "".join(pieces) == "The sky is blue."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert len({(c.id, c.created) for c in chunks}) == 1
    (row,) = audit_rows()
    assert (row["stream"], row["finish_reason"], row["tokens_completion"]) == (1, "stop", 5)
    audited = json.loads(row["response_body"])
    assert audited["id"] == chunks[0].id
    assert audited["choices"][0]["message"]["content"] == "The sky is blue."


def test_streamed_tool_calls(client: openai.OpenAI, fake_ollama: FakeOllama) -> None:
    fake_ollama.queue(
        Reply(
            tool_calls=[
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
            ]
        )
    )

    chunks = list(
        client.chat.completions.create(
            model="llama3.2", messages=[user("Paris and Oslo?")], tools=[WEATHER_TOOL], stream=True
        )
    )

    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert [(call.index, call.function.arguments) for call in calls if call.function] == [
        (0, '{"city":"Paris"}'),
        (1, '{"city":"Oslo"}'),
    ]
    assert len({call.id for call in calls}) == 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_stream_failing_before_its_first_byte_is_a_plain_error(
    client: openai.OpenAI, audit_rows: Rows
) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        list(client.chat.completions.create(model="nope", messages=[user("Hi")], stream=True))

    assert raised.value.status_code == 404
    assert "'nope'" in raised.value.message
    assert audit_rows()[-1]["response_status"] == 404


@pytest.mark.parametrize(
    "fault", [Fault(mid_stream=True, error="out of memory"), Fault(cut_short=True)]
)
def test_a_stream_failing_midway_ends_with_an_error_event(
    client: openai.OpenAI, fake_ollama: FakeOllama, audit_rows: Rows, fault: Fault
) -> None:
    fake_ollama.queue(fault)
    received: list[Any] = []

    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model="llama3.2", messages=[user("Hi")], stream=True
        ):
            received.append(chunk)

    assert [c.choices[0].delta.content for c in received] == ["", "partial "]
    assert raised.value.body["type"] == "upstream_error"  # type: ignore[index]
    (row,) = audit_rows()
    assert (row["response_status"], row["error_type"]) == (200, "upstream_error")
    audited = json.loads(row["response_body"])
    assert audited["choices"][0]["message"]["content"] == "partial "
    assert audited["error"]["type"] == "upstream_error"


# Models ---------------------------------------------------------------------------------------


def test_models_list_and_retrieve(client: openai.OpenAI, reconfigure: Callable[..., None]) -> None:
    reconfigure(model_aliases={"gpt-4o-mini": "llama3.2"})

    listed = [model.id for model in client.models.list()]
    retrieved = client.models.retrieve("llama3.2:latest")
    aliased = client.models.retrieve("gpt-4o-mini")

    assert listed == ["llama3.2:latest", "llava:latest", "gpt-4o-mini"]
    assert (retrieved.id, retrieved.object, retrieved.owned_by) == (
        "llama3.2:latest",
        "model",
        "ollama",
    )
    assert retrieved.created > 0
    assert aliased.id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_an_empty_model_list_is_an_empty_array(
    client: openai.OpenAI, fake_ollama: FakeOllama
) -> None:
    fake_ollama.models = []

    page = client.models.list()

    assert page.data == []
    assert page.object == "list"


# Upstream failures ----------------------------------------------------------------------------


def test_unknown_model_is_404_naming_it(client: openai.OpenAI, audit_rows: Rows) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="mystery:7b", messages=[user("Hi")])

    error = raised.value
    assert error.body == {  # type: ignore[comparison-overlap]
        "message": "The model 'mystery:7b' does not exist.",
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert error.request_id
    assert audit_rows()[-1]["error_type"] == "not_found_error"


def test_unknown_alias_target_is_404_naming_the_alias(
    client: openai.OpenAI, reconfigure: Callable[..., None]
) -> None:
    reconfigure(model_aliases={"gpt-4o": "not-pulled"})

    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[user("Hi")])

    assert "'gpt-4o'" in raised.value.message and "'not-pulled'" in raised.value.message


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [
        (Fault(status=400, error="llava does not support tools"), 400, "invalid_request_error"),
        (Fault(status=500, error="llama runner process has terminated"), 502, "upstream_error"),
        (Fault(status=503, error="server busy, please try again"), 502, "upstream_error"),
        (Fault(malformed=True), 502, "upstream_error"),
    ],
    ids=["400", "500", "503", "malformed"],
)
def test_upstream_failure_maps_to_an_openai_error(
    client: openai.OpenAI,
    fake_ollama: FakeOllama,
    audit_rows: Rows,
    fault: Fault,
    status: int,
    error_type: str,
    reconfigure: Callable[..., None],
) -> None:
    # Issue 6 retries a busy Ollama; this is about the answer the gateway gives when it stops.
    reconfigure(ollama_max_retries=0)
    fake_ollama.queue(fault)

    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="llama3.2", messages=[user("Hi")])

    error = raised.value
    assert error.status_code == status
    assert error.body["type"] == error_type  # type: ignore[index]
    if not fault.malformed:
        assert fault.error in error.message
    assert error.request_id
    assert audit_rows()[-1]["response_status"] == status


def test_upstream_timeout_is_504(
    client: openai.OpenAI,
    fake_ollama: FakeOllama,
    reconfigure: Callable[..., None],
    release: threading.Event,
) -> None:
    reconfigure(ollama_timeout_seconds=0.2)
    fake_ollama.queue(Fault(hold=release))

    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="llama3.2", messages=[user("Hi")])

    assert raised.value.status_code == 504
    assert raised.value.body["type"] == "timeout_error"  # type: ignore[index]


def test_connection_refused_is_502_naming_the_ollama_url(
    client: openai.OpenAI, reconfigure: Callable[..., None]
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    reconfigure(ollama_base_url=url, ollama_max_retries=0)

    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="llama3.2", messages=[user("Hi")])

    assert raised.value.status_code == 502
    assert url in raised.value.message
