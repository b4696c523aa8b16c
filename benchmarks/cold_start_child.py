"""One cold start, run as `python -I -S cold_start_child.py gateway|hello ROOT EVENT_FILE SITE`.

Imports the handler module as Lambda's runtime would (its folder and SITE, the packages its image
would hold, first on sys.path), serves the event once and prints one line, `COLD-START {json}`,
with the in-process timings. Only the standard library is imported before the handler module.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

MARKER = "COLD-START "


class Context:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "ChatFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ChatFunction"
    memory_limit_in_mb = 512
    aws_request_id = "cold-start-bench"
    log_group_name = "/aws/lambda/ChatFunction"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    kind, root, event_file, site = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    folder = root / "functions" / "chat" if kind == "gateway" else root / "benchmarks"
    sys.path[:0] = [str(folder), site]
    event: dict[str, Any] = json.loads(event_file.read_text())
    before_import = time.perf_counter()
    module = __import__("app" if kind == "gateway" else "hello_world")
    imported = time.perf_counter()
    result = module.handler(event, Context())
    served = time.perf_counter()
    report = {
        "status": result["statusCode"],
        "import_ms": (imported - before_import) * 1000,
        "first_event_ms": (served - imported) * 1000,
        "since_main_ms": (served - STARTED) * 1000,
        # The process's CPU time from its start (interpreter start included): unlike wall time,
        # it barely grows when other work competes for the cores.
        "cpu_ms": time.process_time() * 1000,
        "max_rss_mib": _peak_resident_mib(),
    }
    sys.stdout.write(MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()


def _peak_resident_mib() -> float:
    """This process's peak resident memory (VmHWM): what Lambda reports as Max Memory Used for
    a cold invocation. Not `getrusage`'s ru_maxrss, which Linux carries over from the parent
    the process was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # in kB
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
