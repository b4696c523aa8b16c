"""The scheduled retention function, called as EventBridge calls it, and its template entry."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from localapi.events import LambdaContext
from localapi.template import load_template, read_application
from simpleai import runtime
from simpleai.audit import AuditRecord, open_store
from simpleai.settings import Settings
from tests.conftest import ROOT

SCHEDULED_EVENT = {
    "version": "0",
    "id": "c4b2f1f0-0000-4000-8000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-11-23T03:00:00Z",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/audit-retention"],
    "detail": {},
}

CONTEXT = LambdaContext(
    function_name="AuditRetentionFunction", memory_limit_in_mb=256, timeout_seconds=300
)


def retention_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "audit_retention_app", ROOT / "functions" / "audit_retention" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.handler
    return handler


def days_ago(days: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_history(settings: Settings, ages_in_days: list[float]) -> None:
    store = open_store(settings)
    for age in ages_in_days:
        store.record(
            AuditRecord(
                request_path="/v1/models",
                method="GET",
                response_status=200,
                timestamp=days_ago(age),
            )
        )
    store.close()


def test_retention_prunes_expired_rows_and_the_chain_still_verifies(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(audit_retention_days=30)
    runtime.configure(settings)
    write_history(settings, [90, 60, 31, 29, 1, 0])
    try:
        result = retention_handler()(SCHEDULED_EVENT, CONTEXT)
    finally:
        runtime.configure(None)

    assert result["pruned"] == 3
    store = open_store(settings)
    report = store.verify()
    store.close()
    assert report.ok, report.problems
    assert (report.rows, report.first_seq) == (3, 4)
    assert report.anchored_by == "prune anchor at seq 3"


def test_retention_of_zero_days_keeps_everything(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(audit_retention_days=0)
    runtime.configure(settings)
    write_history(settings, [3650, 1])

    try:
        result = retention_handler()(SCHEDULED_EVENT, CONTEXT)
    finally:
        runtime.configure(None)

    assert result == {"retention_days": 0, "cutoff": None, "pruned": 0}
    store = open_store(settings)
    assert store.verify().rows == 2
    store.close()


def test_the_template_schedules_retention_and_the_local_api_ignores_it() -> None:
    template = load_template(ROOT / "template.yaml")
    function = template["Resources"]["AuditRetentionFunction"]
    (event,) = function["Properties"]["Events"].values()

    assert event["Type"] == "Schedule"
    assert function["Metadata"]["DockerBuildArgs"]["FUNCTION"] == "audit_retention"
    assert "AuditRetentionFunction" not in read_application(ROOT / "template.yaml").functions
