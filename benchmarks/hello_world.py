"""The cold-start baseline: the least a FastAPI app behind Mangum can be."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


# No response model: inferring one from the return annotation would import pydantic.v1 (25-40 ms),
# a cost the least FastAPI app need not pay, and which would flatter the gateway's ratio.
@app.post("/chat/completions", response_model=None)
async def hello() -> dict[str, str]:
    return {"hello": "world"}


handler = Mangum(app, lifespan="off")
