"""Ollama `/api/tags` -> OpenAI model objects and lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simpleai.errors import UpstreamError
from simpleai.translate.responses import created_timestamp
from simpleai.translate.types import JSON


def to_model_list(tags: Any, aliases: Mapping[str, str] | None = None) -> JSON:
    """Ollama `/api/tags` -> an OpenAI model list (an empty list is `[]`, never null).

    Aliases whose target is installed are listed too, so a client that checks the list for its
    hard-coded model name finds it.
    """
    if not isinstance(tags, dict):
        raise UpstreamError("Ollama returned a malformed model list.")
    models = tags.get("models") or []
    if not isinstance(models, list):
        raise UpstreamError("Ollama returned a malformed model list.")
    data = [to_model(entry) for entry in models]
    for alias in aliases or {}:
        found = find_model(tags, alias, aliases)
        if found is not None and all(entry["id"] != alias for entry in data):
            data.append(found)
    return {"object": "list", "data": data}


def find_model(tags: Any, model_id: str, aliases: Mapping[str, str] | None = None) -> JSON | None:
    """The model `model_id` names (an alias, or a name with or without `:latest`), or None."""
    target = (aliases or {}).get(model_id, model_id)
    wanted = {target, target + ":latest"} if ":" not in target else {target}
    models = tags.get("models") if isinstance(tags, dict) else None
    for entry in models if isinstance(models, list) else []:
        names = (entry.get("name"), entry.get("model")) if isinstance(entry, dict) else ()
        if any(isinstance(name, str) and name in wanted for name in names):
            return {**to_model(entry), "id": model_id}
    return None


def to_model(entry: Any) -> JSON:
    if not isinstance(entry, dict) or not isinstance(entry.get("name") or entry.get("model"), str):
        raise UpstreamError("Ollama returned a model without a name.")
    return {
        "id": entry.get("name") or entry.get("model"),
        "object": "model",
        "created": created_timestamp(entry.get("modified_at")),
        "owned_by": "ollama",
    }
