"""SimpleAI Gateway: an OpenAI-compatible API in front of Ollama, with OIDC and an audit log."""

from __future__ import annotations

__version__ = "0.1.0"
