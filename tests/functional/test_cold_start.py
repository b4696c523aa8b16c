"""A function's first call in a fresh interpreter, as a Lambda cold start meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_CALL = """
import json, sys
from pathlib import Path
from localapi.events import LambdaContext
from localapi.template import load_handler, read_application

application = read_application(Path("template.yaml"))
handler = load_handler(application.functions["HealthFunction"])
event = json.loads(Path("events/health.json").read_text())
result = handler(event, LambdaContext("HealthFunction", 512, 30))
print(json.dumps({"status": result["statusCode"], "xray": "aws_xray_sdk" in sys.modules}))
"""


def test_first_call_works_and_tracing_off_costs_no_xray_import(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OIDC_ISSUER": "https://login.example.com",
        "OIDC_AUDIENCE": "simpleai-android",
        "DATABASE_URL": f"sqlite:{tmp_path / 'audit.db'}",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }

    result = subprocess.run(
        [sys.executable, "-c", FIRST_CALL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 200, "xray": False}
