"""The shapes the translation works on: JSON objects as Python dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
IdFactory = Callable[[], str]
"""Makes a fresh random id (`chatcmpl-...`, `call_...`); tests pass fixed ones."""
