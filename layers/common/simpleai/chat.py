"""Chat completions and model listing: translate, call Ollama, translate back, note for audit.

The translation rules live in `translate` (pure); this module does the I/O around them and
records on the `Exchange` what the audit row needs: the upstream model, token counts, finish
reason, upstream latency and, for a stream, the assembled completion.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio

from simpleai.errors import GatewayError, NotFoundError, UpstreamError
from simpleai.exchange import Exchange
from simpleai.limits import check_chat_request
from simpleai.runtime import Components
from simpleai.translate import (
    JSON,
    SSE_DONE,
    OllamaChat,
    StreamTranslator,
    find_model,
    from_ollama_chat,
    new_completion_id,
    sse_event,
    to_model_list,
    to_ollama_chat,
)


def prepare(body: Any, parts: Components, exchange: Exchange) -> OllamaChat:
    """Translate the request (400 on bad input) and note what the audit row needs of it."""
    config = parts.settings
    check_chat_request(body, max_messages=config.max_messages)
    chat = to_ollama_chat(body, default_model=config.ollama_model, aliases=config.model_aliases)
    exchange.model = chat.upstream_model
    exchange.stream = chat.stream
    return chat


async def complete(chat: OllamaChat, parts: Components, exchange: Exchange) -> JSON:
    """One non-streaming chat completion."""
    started = time.perf_counter()
    try:
        answer = await parts.ollama.chat(chat.request)
    except NotFoundError as exc:
        raise _for_caller(exc, chat) from exc
    finally:
        exchange.upstream_latency_ms = _since(started)
    completion = from_ollama_chat(answer, model=chat.model, completion_id=new_completion_id())
    usage = completion["usage"]
    exchange.tokens_prompt = usage["prompt_tokens"]
    exchange.tokens_completion = usage["completion_tokens"]
    exchange.finish_reason = completion["choices"][0]["finish_reason"]
    return completion


async def stream(chat: OllamaChat, parts: Components, exchange: Exchange) -> AsyncIterator[bytes]:
    """Open the upstream stream and return the SSE frames to send.

    The first Ollama object is awaited and translated here, so a failure before it (unknown
    model, Ollama down or refusing, a malformed first line) raises as a normal error response
    with its status. A failure after it becomes an `error` event and the stream ends cleanly,
    never silently cut short.
    """
    started = time.perf_counter()
    translator = StreamTranslator(
        model=chat.model, completion_id=new_completion_id(), include_usage=chat.include_usage
    )
    upstream = parts.ollama.chat_stream(chat.request)
    try:
        first = translator.translate(await anext(upstream))
    except StopAsyncIteration:
        raise UpstreamError("Ollama ended the stream before sending anything.") from None
    except NotFoundError as exc:
        raise _for_caller(exc, chat) from exc
    except GatewayError:
        await upstream.aclose()  # a malformed first line leaves the response open
        raise
    finally:
        exchange.upstream_latency_ms = _since(started)
    return _frames(first, upstream, translator, exchange, started)


async def _frames(
    first: list[JSON],
    upstream: AsyncGenerator[JSON, None],
    translator: StreamTranslator,
    exchange: Exchange,
    started: float,
) -> AsyncIterator[bytes]:
    failure: GatewayError | None = None
    try:
        # The frames made of one upstream line leave together: one write, not one per frame.
        if first:
            yield b"".join(map(sse_event, first))
        async for item in upstream:
            if chunks := translator.translate(item):
                yield b"".join(map(sse_event, chunks))
        if not translator.done:
            raise UpstreamError("Ollama ended the stream before finishing its answer.")
    except GatewayError as exc:
        failure = exc
    finally:
        # Recorded before the last frame leaves: the audit middleware writes the row then.
        _record_stream(translator, exchange, started, failure)
        # A caller who hangs up cancels this generator: the upstream response is still closed
        # (shielded, or the cancellation would skip it) so Ollama stops generating at once.
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
    if failure is not None:
        yield sse_event(failure.to_body(), event="error")
        return
    yield SSE_DONE


def _record_stream(
    translator: StreamTranslator, exchange: Exchange, started: float, failure: GatewayError | None
) -> None:
    exchange.upstream_latency_ms = _since(started)
    exchange.finish_reason = translator.finish_reason
    if translator.usage is not None:
        exchange.tokens_prompt = translator.usage["prompt_tokens"]
        exchange.tokens_completion = translator.usage["completion_tokens"]
    assembled = translator.completion()
    if failure is not None:
        exchange.error_type = failure.type
        assembled.update(failure.to_body())
    exchange.response_text = json.dumps(assembled, ensure_ascii=False)


def _for_caller(error: NotFoundError, chat: OllamaChat) -> NotFoundError:
    """An unknown upstream model, named as the caller named it (an alias is not their word)."""
    if error.code != "model_not_found" or chat.model == chat.upstream_model:
        return error
    return NotFoundError(
        f"The model '{chat.model}' (Ollama model '{chat.upstream_model}') does not exist.",
        param="model",
        code="model_not_found",
    )


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def list_models(parts: Components) -> JSON:
    return to_model_list(await parts.ollama.tags(), parts.settings.model_aliases)


async def retrieve_model(model_id: str, parts: Components) -> JSON:
    model = find_model(await parts.ollama.tags(), model_id, parts.settings.model_aliases)
    if model is None:
        raise NotFoundError(
            f"The model '{model_id}' does not exist.", param="model", code="model_not_found"
        )
    return model
