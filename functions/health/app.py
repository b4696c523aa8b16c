"""Health function: GET /health (shallow, no token) and GET /health?deep=true."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from mangum import Mangum

from simpleai import health, runtime
from simpleai.webapp import create_app, lambda_handler

app = create_app("SimpleAI Gateway: health")


@app.get("/health")
async def get_health(deep: bool = False) -> Any:
    if not deep:
        return health.shallow()
    healthy, report = await health.deep(runtime.components())
    return JSONResponse(report, status_code=200 if healthy else 503)


handler = lambda_handler(Mangum(app, lifespan="off"))
