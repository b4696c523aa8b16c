"""Chat function: POST /chat/completions, /v1/chat/completions; GET /models, /v1/models[/{id}]."""

from __future__ import annotations

import gc

# What the init phase allocates lives as long as the process: collecting it is wasted work (a
# third of the difference to a bare FastAPI app's cold start). Collection resumes at the end of
# this module, with those objects frozen out of it.
gc.disable()

from fastapi import Request  # noqa: E402
from fastapi.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from mangum import Mangum  # noqa: E402

from simpleai import chat, runtime  # noqa: E402
from simpleai.webapp import (  # noqa: E402
    authenticated,
    create_app,
    exchange_of,
    lambda_handler,
    read_json,
)

app = create_app("SimpleAI Gateway: chat")
# Routes answer with JSONResponse: the translation already built plain JSON, so FastAPI's
# jsonable_encoder walk over it (a quarter of a millisecond a request) is skipped.

# Server-sent events must reach the caller as they are made: no proxy buffering. (Every answer
# already carries Cache-Control: no-store.)
STREAM_HEADERS = {"X-Accel-Buffering": "no"}


# Each endpoint takes the request and authenticates its caller first, by a plain call: they are
# added below as plain Starlette routes, not FastAPI's, which would resolve parameters and
# dependencies on every request (about 60 us of a warm invocation here, for endpoints that
# declare none).
async def chat_completions(request: Request) -> Response:
    await authenticated(request)
    body = await read_json(request)
    parts = runtime.components()
    exchange = exchange_of(request)
    completion = chat.prepare(body, parts, exchange)
    if completion.stream:
        frames = await chat.stream(completion, parts, exchange)
        return StreamingResponse(frames, media_type="text/event-stream", headers=STREAM_HEADERS)
    return JSONResponse(await chat.complete(completion, parts, exchange))


async def list_models(request: Request) -> Response:
    await authenticated(request)
    return JSONResponse(await chat.list_models(runtime.components()))


async def retrieve_model(request: Request) -> Response:
    await authenticated(request)
    model_id: str = request.path_params["model_id"]
    return JSONResponse(await chat.retrieve_model(model_id, runtime.components()))


for prefix in ("", "/v1"):
    app.add_route(f"{prefix}/chat/completions", chat_completions, methods=["POST"])
    app.add_route(f"{prefix}/models", list_models, methods=["GET"])
    app.add_route(f"{prefix}/models/{{model_id:path}}", retrieve_model, methods=["GET"])

handler = lambda_handler(Mangum(app, lifespan="off"))
gc.freeze()
gc.enable()
