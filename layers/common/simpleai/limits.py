"""Request limits, checked before anything goes upstream.

The body size is enforced while the body is read (webapp); the shape of a parsed chat request is
checked here: how many messages, how deep the JSON nests, how long the few free-text fields that
have no business being large may be. Pure functions: they raise `InvalidRequestError`.
"""

from __future__ import annotations

from typing import Any

from simpleai.errors import InvalidRequestError

MAX_JSON_DEPTH = 64
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4
MAX_NAME_LENGTH = 256
"""For `model`, `user` and tool names: identifiers, not documents."""


def check_chat_request(body: Any, *, max_messages: int) -> None:
    """Refuse a chat request that is too large in count or depth, naming what is wrong."""
    if not isinstance(body, dict):
        return  # the translation reports the wrong type
    _check_depth(body)
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > max_messages:
        raise InvalidRequestError(
            f"Too many messages: {len(messages)}; at most {max_messages} are accepted.",
            param="messages",
            code="too_many_messages",
        )
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > MAX_TOOLS:
        raise InvalidRequestError(
            f"Too many tools: {len(tools)}; at most {MAX_TOOLS} are accepted.", param="tools"
        )
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"At most {MAX_STOP_SEQUENCES} stop sequences are accepted.", param="stop"
        )
    for name in ("model", "user"):
        value = body.get(name)
        if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
            raise InvalidRequestError(
                f"'{name}' is longer than {MAX_NAME_LENGTH} characters.", param=name
            )


def _check_depth(value: Any) -> None:
    """Iterative, so a hostile nesting cannot exhaust the interpreter's stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequestError(
                f"The request nests JSON deeper than {MAX_JSON_DEPTH} levels.",
                code="too_deep",
            )
        if isinstance(item, dict):
            stack.extend(
                (child, depth + 1) for child in item.values() if isinstance(child, dict | list)
            )
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
