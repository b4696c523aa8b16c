"""What each function's image would contain is enough to run it.

The Dockerfile's install steps are repeated into a scratch directory (the shared package, then the
function's requirements.txt), and each handler is imported from there and invoked with the
events/ files in a clean interpreter: `python -I -S`, so nothing of the test environment (no
site-packages, no editable install, no PYTHONPATH) is on sys.path but the scratch directory and
the function's folder. A dependency missing from layers/common or a requirements.txt fails here.

The scratch install (tests/support/image_site.py) is kept in the temporary directory under a hash
of its inputs, so only the first run after a change pays for pip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localapi.template import load_template, read_application
from tests.conftest import AUDIENCE, EVENTS, PLACEHOLDER, ROOT
from tests.support.fake_ollama import FakeOllama
from tests.support.image_site import FUNCTIONS, bootstrap, image_site
from tests.support.oidc import Provider

# Packages of the development environment that have no place in an image.
DEV_ONLY = ("pytest", "mypy", "ruff", "moto", "cfn_lint", "uvicorn", "openai", "oidc_provider_mock")

INVOKE = r"""
import json, sys
from dataclasses import dataclass

@dataclass
class Context:
    function_name: str = "image-contents"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:image-contents"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "image-contents-test"
    log_group_name: str = "/aws/lambda/image-contents"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000

import app
results = [app.handler(event, Context()) for event in json.load(sys.stdin)]
print(json.dumps({"results": results, "path": sys.path, "modules": sorted(sys.modules)}))
"""


def events_by_function() -> dict[str, list[str]]:
    """Each function's events/ files, found by routing them as the template routes requests."""
    application = read_application(ROOT / "template.yaml")
    found: dict[str, list[str]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("source") == "aws.events":  # an EventBridge schedule, not a request
            for function in scheduled_functions():
                found.setdefault(function, []).append(path.stem)
            continue
        http = event["requestContext"]["http"]
        route = application.match(http["method"], http["path"])
        assert route is not None, f"{path.name}: no route in template.yaml"
        code_dir = application.functions[route[0].function].code_dir
        found.setdefault(code_dir.name, []).append(path.stem)
    return found


def scheduled_functions() -> list[str]:
    """The code folders of the template's functions that run on a Schedule event."""
    resources = load_template(ROOT / "template.yaml")["Resources"]
    return [
        resource["Metadata"]["DockerBuildArgs"]["FUNCTION"]
        for resource in resources.values()
        if resource.get("Type") == "AWS::Serverless::Function"
        and any(
            event.get("Type") == "Schedule"
            for event in (resource["Properties"].get("Events") or {}).values()
        )
    ]


EVENTS_OF = events_by_function()
SCHEDULED_EVENTS = {
    path.stem
    for path in EVENTS.glob("*.json")
    if json.loads(path.read_text()).get("source") == "aws.events"
}


def test_every_function_has_events() -> None:
    assert sorted(EVENTS_OF) == sorted(path.name for path in FUNCTIONS.iterdir() if path.is_dir())


@pytest.mark.parametrize("function", sorted(EVENTS_OF))
def test_handler_runs_from_what_its_image_contains(
    function: str,
    tmp_path: Path,
    fake_ollama: FakeOllama,
    oidc: Provider,
    token: Callable[..., str],
) -> None:
    # GIVEN the image's packages, and the function's events with real tokens where they carry one
    site = image_site(function)
    names = EVENTS_OF[function]
    events: list[dict[str, Any]] = []
    for name in names:
        event = json.loads((EVENTS / f"{name}.json").read_text())
        if event.get("headers", {}).get("authorization") == PLACEHOLDER:
            event["headers"]["authorization"] = f"Bearer {token('alice')}"
        events.append(event)
    env = {
        "OIDC_ISSUER": oidc.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OLLAMA_BASE_URL": fake_ollama.url,
        "DATABASE_URL": f"sqlite:{tmp_path / 'audit.db'}",
        "POWERTOOLS_SERVICE_NAME": "simpleai-gateway",
    }

    # WHEN a bare interpreter imports the handler from there and invokes it with each event
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap(FUNCTIONS / function, site) + INVOKE],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )

    # THEN every event gets the answer it would get in Lambda, from the image's packages alone
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    statuses = {
        # A scheduled function answers with its report, not an HTTP response.
        name: result.get("statusCode", "report")
        for name, result in zip(names, report["results"], strict=True)
    }
    expected = {
        name: "report" if name in SCHEDULED_EVENTS else 401 if name.endswith("no-token") else 200
        for name in names
    }
    assert statuses == expected, report["results"]
    assert not [entry for entry in report["path"] if "site-packages" in entry]
    assert not [m for m in report["modules"] if m.split(".")[0] in DEV_ONLY]


def test_image_holds_no_development_tools() -> None:
    for function in EVENTS_OF:
        installed = {path.name.split("-")[0].lower() for path in image_site(function).iterdir()}
        assert not installed & set(DEV_ONLY), function
