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
print(json.dumps({"status": result["statusCode"], "xray": "aws_xray_sdk" in sys.modules,
                  "sqlite_utils": "sqlite_utils" in sys.modules}))
"""


def test_first_call_imports_neither_xray_nor_sqlite_utils_needlessly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OIDC_ISSUER": "https://login.example.com",
        "OIDC_AUDIENCE": "simpleai-android",
        "DATABASE_URL": f"sqlite:{tmp_path / 'audit.db'}",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }

    def first_call() -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-c", FIRST_CALL],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        return outcome

    # A new database is migrated (sqlite-utils needed); a migrated one is not touched.
    assert first_call() == {"status": 200, "xray": False, "sqlite_utils": True}
    assert first_call() == {"status": 200, "xray": False, "sqlite_utils": False}
