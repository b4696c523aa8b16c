"""SimpleAI Gateway: an OpenAI-compatible API in front of Ollama, with OIDC and an audit log."""

from __future__ import annotations

import sys

__version__ = "0.1.0"

# httpx's package imports its command-line client (httpx._main) only to offer `httpx.main`; that
# module imports click, which every image holds (sqlite-utils needs it), and then fails on rich,
# which none holds: about 20 ms of every cold start spent for an ImportError. Marked as absent
# before anything here imports httpx, the module is not tried and httpx keeps its stub `main`.
# Nothing in the gateway runs httpx's command line.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
