"""The shapes the translation works on: JSON objects as Python dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
IdFactory = Callable[[], str]
"""Makes a fresh random id (`chatcmpl-...`, `call_...`); tests pass fixed ones."""


class Base64Image(str):
    """An image's base64, checked to hold nothing but base64's letters, digits, `+`, `/` and
    `=` (translate.requests): JSON carries it as it is, with nothing to escape, so the request
    to Ollama puts it in without the encoder scanning it (ollama.py)."""

    __slots__ = ()
