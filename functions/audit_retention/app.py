"""Audit retention function: run on a schedule (EventBridge), prunes records older than
AUDIT_RETENTION_DAYS in batches. A plain Lambda handler: no HTTP, so no FastAPI."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from simpleai import runtime
from simpleai.audit import AuditStore, open_store
from simpleai.audit.retention import prune_expired
from simpleai.observability import logger
from simpleai.settings import Settings

# Kept at module scope so a warm function reuses its connection; rebuilt if settings change.
_opened: tuple[Settings, AuditStore] | None = None


def _store(settings: Settings) -> AuditStore:
    global _opened
    if _opened is None or _opened[0] is not settings:
        if _opened is not None:
            _opened[1].close()
        _opened = (settings, open_store(settings))
    return _opened[1]


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings()
    run = prune_expired(_store(settings), settings.audit_retention_days)
    logger.info("audit retention", extra=asdict(run))
    return asdict(run)
