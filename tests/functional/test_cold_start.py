"""A function's first call in a fresh interpreter, as a Lambda cold start meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        return _fresh_interpreter(FIRST_CALL, env)

    # A new database is migrated (sqlite-utils needed); a migrated one is not touched.
    assert first_call() == {"status": 200, "xray": False, "sqlite_utils": True}
    assert first_call() == {"status": 200, "xray": False, "sqlite_utils": False}


IMPORT_CHAT = """
import gc, json, sys
sys.path.insert(0, "functions/chat")
import app
print(json.dumps({"modules": sorted(sys.modules), "gc_enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count()}))
"""

# Modules that would only lengthen the chat function's init phase: the command-line tools of
# httpx (click, rich, pygments) and of the audit log (sqlite-utils), the AWS SDK's clients (the
# DynamoDB backend imports them when configured), the X-Ray SDK (only with TRACING_ENABLED).
# Powertools imports the bare `botocore` package where it is installed (to add its user agent),
# which costs about a millisecond; botocore's sessions and clients are another matter. FastAPI
# imports pydantic.v1 (25-40 ms) the first time a route has a parameter it builds a pydantic
# field for; the chat routes have none.
NOT_AT_INIT = (
    "pydantic.v1",
    "click",
    "rich",
    "pygments",
    "sqlite_utils",
    "boto3",
    "botocore.session",
    "botocore.client",
    "aws_xray_sdk",
)


@pytest.fixture(scope="module")
def chat_import() -> dict[str, object]:
    """What a fresh interpreter holds right after importing the chat handler module."""
    return _fresh_interpreter(IMPORT_CHAT, {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true"})


def test_chat_handler_import_leaves_out_what_its_first_request_does_not_need(
    chat_import: dict[str, object],
) -> None:
    modules = chat_import["modules"]
    assert isinstance(modules, list)
    unwanted = [
        name
        for name in modules
        if any(name == banned or name.startswith(f"{banned}.") for banned in NOT_AT_INIT)
    ]
    assert unwanted == []


def test_chat_handler_import_ends_with_garbage_collection_on_and_its_objects_frozen(
    chat_import: dict[str, object],
) -> None:
    assert chat_import["gc_enabled"] is True
    frozen = chat_import["frozen"]
    assert isinstance(frozen, int) and frozen > 10_000


FETCH_KEYS = """
import json, sys
sys.path.insert(0, "functions/chat")
import app
from simpleai.runtime import JsonFetcher
before = set(sys.modules)
JsonFetcher()({url!r})
print(json.dumps({{"new": sorted(set(sys.modules) - before)}}))
"""


def test_fetching_the_keys_at_the_first_request_imports_no_http_stack_of_its_own(
    tmp_path: Path,
) -> None:
    """httpx's default transport would import httpcore and h11 (15-20 ms) for two GETs."""
    (tmp_path / "jwks").write_text('{"keys": []}')
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split(" port ")[1].split(" ")[0]
        env = {
            name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
        }
        code = FETCH_KEYS.format(url=f"http://127.0.0.1:{port}/jwks")
        new = _fresh_interpreter(code, {**env, "POWERTOOLS_METRICS_DISABLED": "true"})["new"]
    finally:
        server.terminate()
        server.wait()
    assert isinstance(new, list)
    assert [name for name in new if name.split(".")[0] in ("httpcore", "h11", "anyio")] == []


def _fresh_interpreter(code: str, env: dict[str, str]) -> dict[str, object]:
    """Run `code` in a new interpreter from the repository root; the JSON of its last line."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome
