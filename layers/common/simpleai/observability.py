"""What operators see: one JSON access line and one set of CloudWatch EMF metrics per request.

Logs go through Powertools' Logger (JSON, with the Lambda context and the API Gateway request id
as correlation id); metrics through Powertools' Metrics, flushed per request so they work the
same under Lambda, the local API and a plain ASGI server. Neither ever carries a token, a
credential or a prompt: callers pass only the fields named here.

Tracing (`TRACING_ENABLED`) builds Powertools' Tracer only when asked for: importing the X-Ray SDK
costs about 200 ms of cold start even when tracing is off.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "simpleai-gateway"
NAMESPACE = "SimpleAIGateway"

logger = Logger(service=SERVICE)

_metrics: Metrics | None = None
_cold_start = True


def log_access(**fields: Any) -> None:
    """The one line per request: who, what, how it went. Callers pass no bodies."""
    logger.info("request", extra=fields)


def _registry() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE), service=SERVICE
        )
    return _metrics


def emit_request_metrics(
    *,
    function: str,
    status: int,
    latency_ms: float,
    model: str | None = None,
    error_type: str | None = None,
    upstream_latency_ms: float | None = None,
    tokens_prompt: int | None = None,
    tokens_completion: int | None = None,
) -> None:
    """One EMF document for one request, with function and model as dimensions."""
    global _cold_start
    metrics = _registry()
    metrics.add_dimension("function", function)
    if model:
        metrics.add_dimension("model", model)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    if status >= 400:
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    if upstream_latency_ms is not None:
        metrics.add_metric(
            name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=upstream_latency_ms
        )
    if tokens_prompt:
        metrics.add_metric(name="PromptTokens", unit=MetricUnit.Count, value=tokens_prompt)
    if tokens_completion:
        metrics.add_metric(name="CompletionTokens", unit=MetricUnit.Count, value=tokens_completion)
    if _cold_start:
        _cold_start = False
        metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    if status >= 400:
        # Errors by type in a document of their own, so the type does not split the others.
        with single_metric(
            name="ErrorsByType",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions={"function": function, "error_type": error_type or f"http_{status}"},
        ):
            pass


def tracer() -> Any:
    """Powertools' Tracer, built on first use; call only when tracing is enabled."""
    from aws_lambda_powertools import Tracer  # deferred: the X-Ray SDK is slow to import

    return Tracer(service=SERVICE)
