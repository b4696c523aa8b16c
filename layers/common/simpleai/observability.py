"""Structured logs for operators: JSON lines through Powertools, never a token or a prompt."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

SERVICE = "simpleai-gateway"

logger = Logger(service=SERVICE)


def log_access(**fields: Any) -> None:
    """The one line per request: who, what, how it went. Callers pass no bodies."""
    logger.info("request", extra=fields)
