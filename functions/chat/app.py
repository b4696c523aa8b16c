"""Chat function: POST /chat/completions, /v1/chat/completions; GET /models, /v1/models[/{id}]."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from mangum import Mangum

from simpleai import chat, runtime
from simpleai.webapp import Caller, create_app, exchange_of, lambda_handler, read_json

app = create_app("SimpleAI Gateway: chat")

# Server-sent events must reach the caller as they are made: no proxy buffering. (Every answer
# already carries Cache-Control: no-store.)
STREAM_HEADERS = {"X-Accel-Buffering": "no"}


@app.post("/chat/completions", response_model=None)
@app.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, identity: Caller
) -> dict[str, Any] | StreamingResponse:
    body = await read_json(request)
    parts = runtime.components()
    exchange = exchange_of(request)
    completion = chat.prepare(body, parts, exchange)
    if completion.stream:
        frames = await chat.stream(completion, parts, exchange)
        return StreamingResponse(frames, media_type="text/event-stream", headers=STREAM_HEADERS)
    return await chat.complete(completion, parts, exchange)


@app.get("/models")
@app.get("/v1/models")
async def list_models(identity: Caller) -> dict[str, Any]:
    return await chat.list_models(runtime.components())


@app.get("/models/{model_id:path}")
@app.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, identity: Caller) -> dict[str, Any]:
    return await chat.retrieve_model(model_id, runtime.components())


handler = lambda_handler(Mangum(app, lifespan="off"))
