"""The access line and EMF documents as written, without a handler around them."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest

from simpleai import observability
from simpleai.observability import emit_request, logger


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def emit_failure(**overrides: Any) -> None:
    emit_request(
        **{
            "function": "ChatFunction",
            "status": 401,
            "latency_ms": 0.5,
            "access": {"request_id": "r-1", "user": None},
            "error_type": "authentication_error",
            **overrides,
        }
    )


def test_the_access_line_has_powertools_keys_and_context_and_drops_empty_fields(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    logger.append_keys(function_name="ChatFunction", correlation_id="r-1")
    try:
        emit_failure()
    finally:
        logger.remove_keys(["function_name", "correlation_id"])

    access = next(line for line in lines(log_output) if line.get("message") == "request")
    assert access["level"] == "INFO"
    assert access["service"] == "simpleai-gateway"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}", access["timestamp"])
    assert (access["function_name"], access["correlation_id"]) == ("ChatFunction", "r-1")
    assert access["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert (access["request_id"], access["status"]) == ("r-1", 401)
    assert "user" not in access and "model" not in access and "sampling_rate" not in access


def test_an_error_is_counted_by_type_in_a_document_of_its_own(log_output: io.StringIO) -> None:
    emit_failure(model="llama3.2")

    documents = [line for line in lines(log_output) if "_aws" in line]
    assert len(documents) == 2
    main, by_type = documents
    assert (main["Errors"], main["model"]) == (1, "llama3.2")
    assert "error_type" not in main  # the type must not split the request metrics
    assert by_type["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["function", "error_type", "service"]
    ]
    assert (by_type["error_type"], by_type["ErrorsByType"]) == ("authentication_error", 1)


def test_cold_start_is_counted_once(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observability, "_cold_start", True)

    emit_failure()
    emit_failure()

    documents = [line for line in lines(log_output) if "Requests" in line]
    assert [document.get("ColdStart") for document in documents] == [1, None]


def test_metrics_can_be_switched_off_and_the_log_level_is_honoured(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    emit_failure()
    assert [line.get("message") for line in lines(log_output)] == ["request"]

    level = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        emit_failure()
    finally:
        logger.setLevel(level)
    assert len(lines(log_output)) == 1
