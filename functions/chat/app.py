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


# Each route authenticates its caller first, by a plain call rather than a FastAPI dependency:
# resolving one cost about 40 us a request here, a twentieth of a warm invocation.
@app.post("/chat/completions", response_model=None)
@app.post("/v1/chat/completions", response_model=None)
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


@app.get("/models", response_model=None)
@app.get("/v1/models", response_model=None)
async def list_models(request: Request) -> Response:
    await authenticated(request)
    return JSONResponse(await chat.list_models(runtime.components()))


@app.get("/models/{model_id:path}", response_model=None)
@app.get("/v1/models/{model_id:path}", response_model=None)
async def retrieve_model(request: Request) -> Response:
    await authenticated(request)
    # Read from the path as it is rather than as a typed `model_id: str` parameter, for which
    # FastAPI would build a pydantic field, and import pydantic.v1 (25-40 ms of every cold
    # start) only to check that `str` is not a pydantic v1 model.
    model_id: str = request.path_params["model_id"]
    return JSONResponse(await chat.retrieve_model(model_id, runtime.components()))


handler = lambda_handler(Mangum(app, lifespan="off"))
gc.freeze()
gc.enable()
