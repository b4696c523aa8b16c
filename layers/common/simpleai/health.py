"""Health: shallow (the function runs) and deep (Ollama, the audit store and the OIDC provider)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from simpleai import __version__
from simpleai.errors import GatewayError
from simpleai.runtime import Components


def shallow() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


async def deep(parts: Components) -> tuple[bool, dict[str, Any]]:
    """Run every check; (all passed, the report)."""

    async def ollama() -> dict[str, Any]:
        breaker = parts.breaker.snapshot()
        try:
            version = await parts.ollama.version()
        except GatewayError as exc:
            return {
                "ok": False,
                "url": parts.ollama.base_url,
                "error": exc.message,
                "breaker": breaker,
            }
        return {"url": parts.ollama.base_url, "version": version.get("version"), "breaker": breaker}

    async def audit() -> dict[str, Any]:
        parts.audit.check_writable()
        return {"backend": parts.settings.audit_backend}

    async def oidc() -> dict[str, Any]:
        await asyncio.to_thread(parts.jwks.discovery)
        return {"issuer": parts.settings.oidc_issuer}

    checks = {"ollama": ollama, "audit": audit, "oidc": oidc}
    results = await asyncio.gather(*(_run(check) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    healthy = all(result["ok"] for result in results)
    return healthy, {**shallow(), "status": "ok" if healthy else "degraded", "checks": report}


async def _run(check: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = {"ok": True, **await check()}
    except GatewayError as exc:
        detail = {"ok": False, "error": exc.message}
    except Exception as exc:  # a health check reports failures, it never raises them
        detail = {"ok": False, "error": type(exc).__name__}
    return {**detail, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
