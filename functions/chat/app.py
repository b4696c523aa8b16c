"""Chat function: POST /chat/completions, /v1/chat/completions; GET /models, /v1/models[/{id}]."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from mangum import Mangum

from simpleai import chat, runtime
from simpleai.errors import NotFoundError
from simpleai.webapp import Caller, create_app, exchange_of, lambda_handler, read_json

app = create_app("SimpleAI Gateway: chat")


@app.post("/chat/completions")
@app.post("/v1/chat/completions")
async def chat_completions(request: Request, identity: Caller) -> dict[str, Any]:
    body = await read_json(request)
    return await chat.complete(body, runtime.components(), exchange_of(request))


@app.get("/models")
@app.get("/v1/models")
async def list_models(identity: Caller) -> dict[str, Any]:
    return await chat.list_models(runtime.components())


@app.get("/models/{model_id:path}")
@app.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, identity: Caller) -> dict[str, Any]:
    model = await chat.find_model(model_id, runtime.components())
    if model is None:
        raise NotFoundError(
            f"The model '{model_id}' does not exist.", param="model", code="model_not_found"
        )
    return model


handler = lambda_handler(Mangum(app, lifespan="off"))
