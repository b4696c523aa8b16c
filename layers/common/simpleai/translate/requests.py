"""OpenAI chat completion requests -> Ollama `/api/chat` requests."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simpleai.errors import InvalidRequestError
from simpleai.translate.types import JSON, Base64Image

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
IMAGE_DATA_URL = re.compile(
    r"data:image/(png|jpeg|webp|gif);base64,(.*)", re.IGNORECASE | re.DOTALL
)
# OpenAI's effort levels -> Ollama's `think`: "none" turns thinking off, the rest pass as levels.
THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}
NUMBER_OPTIONS = {  # OpenAI parameter -> (Ollama option, lowest, highest), ranges as OpenAI's
    "temperature": ("temperature", 0.0, 2.0),
    "top_p": ("top_p", 0.0, 1.0),
    "frequency_penalty": ("frequency_penalty", -2.0, 2.0),
    "presence_penalty": ("presence_penalty", -2.0, 2.0),
}


@dataclass(frozen=True)
class OllamaChat:
    """A translated request: what to send upstream and what to tell the caller."""

    request: JSON
    """The `/api/chat` body."""
    model: str
    """The model name the caller asked for (or the default): echoed in every response."""
    stream: bool
    include_usage: bool

    @property
    def upstream_model(self) -> str:
        model: str = self.request["model"]
        return model


# Requests -------------------------------------------------------------------------------------


def to_ollama_chat(
    body: Any, *, default_model: str, aliases: Mapping[str, str] | None = None
) -> OllamaChat:
    """Translate an OpenAI chat completion request body into an Ollama `/api/chat` request."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    model = _optional(body, "model", str)
    if model is None:
        model = default_model
    if not model:
        raise _invalid("model", "must be a non-empty string")
    stream = _optional(body, "stream", bool) or False
    for legacy in ("functions", "function_call"):  # silently dropping them would lose calls
        if body.get(legacy) is not None:
            raise _invalid(legacy, "is the deprecated form of tools; send 'tools' instead")
    n = _optional(body, "n", int)
    if n is not None and n != 1:
        raise InvalidRequestError("Only n=1 is supported: Ollama returns one choice.", param="n")
    request: JSON = {
        "model": (aliases or {}).get(model, model),
        "messages": to_ollama_messages(body.get("messages")),
        "stream": stream,  # always explicit: Ollama streams unless told not to
    }
    tools = _tools(body)
    if tools:
        request["tools"] = tools
    format_ = _format(body.get("response_format"))
    if format_ is not None:
        request["format"] = format_
    options = _options(body)
    if options:
        request["options"] = options
    effort = _optional(body, "reasoning_effort", str)
    if effort is not None:
        if effort not in THINK:
            raise _invalid("reasoning_effort", f"must be one of {', '.join(THINK)}")
        request["think"] = THINK[effort]
    stream_options = _optional(body, "stream_options", dict) or {}
    include_usage = _optional(stream_options, "include_usage", bool, "stream_options.") or False
    return OllamaChat(request=request, model=model, stream=stream, include_usage=include_usage)


def to_ollama_messages(messages: Any) -> list[JSON]:
    """One Ollama message per OpenAI message (never split, unlike Ollama's own `/v1` layer)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty array.", param="messages")
    tool_names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    translated = []
    for index, message in enumerate(messages):
        translated.append(_to_ollama_message(message, f"messages[{index}]", tool_names))
    return translated


def _to_ollama_message(message: Any, param: str, tool_names: dict[str, str]) -> JSON:
    if not isinstance(message, dict):
        raise InvalidRequestError(f"{param} must be an object.", param=param)
    role = message.get("role")
    role = ROLES.get(role) if isinstance(role, str) else None
    if role is None:
        raise _invalid(f"{param}.role", f"must be one of {', '.join(ROLES)}")
    result: JSON = {"role": role}
    tool_calls = message.get("tool_calls")
    if role == "assistant" and tool_calls is not None:
        result["tool_calls"] = _to_ollama_tool_calls(tool_calls, f"{param}.tool_calls", tool_names)
    content = message.get("content")
    if content is None:
        if not result.get("tool_calls"):
            raise _invalid(
                f"{param}.content", "may be null only in an assistant message with tool_calls"
            )
        result["content"] = ""
    elif isinstance(content, str):
        result["content"] = content
    elif isinstance(content, list):
        result["content"], images = _parts(content, f"{param}.content")
        if images:
            result["images"] = images
    else:
        raise _invalid(f"{param}.content", "must be a string, an array of content parts or null")
    thinking = message.get("reasoning_content")
    if role == "assistant" and isinstance(thinking, str) and thinking:
        result["thinking"] = thinking
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _invalid(f"{param}.tool_call_id", "is required in a tool message")
        result["tool_call_id"] = call_id
        name = message.get("name")
        name = name if isinstance(name, str) and name else tool_names.get(call_id)
        if name:
            result["tool_name"] = name
    return result


def _parts(parts: list[Any], param: str) -> tuple[str, list[Base64Image]]:
    """Content parts -> (text parts joined by newlines, raw base64 images)."""
    texts: list[str] = []
    images: list[Base64Image] = []
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid(f"{where}.text", "must be a string")
            texts.append(text)
        elif kind == "image_url":
            images.append(_image(part.get("image_url"), f"{where}.image_url"))
        else:
            raise _invalid(f"{where}.type", "must be 'text' or 'image_url'")
    return "\n".join(texts), images


def _image(image_url: Any, param: str) -> Base64Image:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise _invalid(f"{param}.url", "must be a string")
    if url[:8].lower().startswith(("http://", "https://")):  # not a copy of a data URL
        raise InvalidRequestError(
            f"{param}.url: image URLs are not fetched (the gateway makes no requests on a "
            "caller's behalf); send the image inline as data:image/png;base64,...",
            param=f"{param}.url",
            code="image_url_not_supported",
        )
    found = IMAGE_DATA_URL.fullmatch(url.strip())
    if found is None:
        raise _invalid(f"{param}.url", "must be a data:image/{png,jpeg,webp,gif};base64,... URL")
    data = found.group(2)
    if not _is_base64(data):
        raise _invalid(f"{param}.url", "does not hold valid base64 image data")
    return Base64Image(data)


BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _is_base64(data: str) -> bool:
    """Whether `data` is non-empty base64 with its padding (RFC 4648), what Ollama's decoder
    takes, checked without decoding: decoding a photo's base64 only to see that it can be
    decoded took ~12 ms for 4 MiB, this ~2 ms. (`base64.b64decode(validate=True)` also let
    excess padding such as "AAAA=" through, which Ollama refuses.)"""
    if not data or len(data) % 4 or not data.isascii():
        return False
    text = data.encode("ascii")
    digits = text.rstrip(b"=")
    return len(text) - len(digits) <= 2 and not digits.translate(None, BASE64_ALPHABET)


def _to_ollama_tool_calls(calls: Any, param: str, tool_names: dict[str, str]) -> list[JSON]:
    if not isinstance(calls, list):
        raise _invalid(param, "must be an array")
    translated = []
    for index, call in enumerate(calls):
        where = f"{param}[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str) or not name:
            raise _invalid(f"{where}.function.name", "must be a non-empty string")
        arguments = function.get("arguments")
        if arguments in (None, ""):  # some clients send "" for a call without arguments
            arguments = "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _invalid(
                f"{where}.function.arguments", "must be a JSON object encoded as a string"
            )
        entry: JSON = {"function": {"name": name, "arguments": parsed}}
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            entry["id"] = call_id
            tool_names[call_id] = name
        translated.append(entry)
    return translated


def _tools(body: JSON) -> list[Any]:
    tools = _optional(body, "tools", list) or []
    names = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _invalid(f"tools[{index}].type", "must be 'function'")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"tools[{index}].function.name", "must be a string")
        names.append(function["name"])
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "required"):
        # "required" cannot be enforced: Ollama has no way to force a call (docs/compatibility.md)
        if choice == "required" and not tools:
            raise _invalid("tool_choice", "'required' needs tools")
        return tools
    if choice == "none":
        return []
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if (
        not isinstance(choice, dict)
        or choice.get("type") != "function"
        or not isinstance(name, str)
    ):
        raise _invalid("tool_choice", "must be 'none', 'auto', 'required' or a named function")
    if name not in names:
        raise _invalid("tool_choice", f"names function '{name}', which is not in tools")
    return [tools[names.index(name)]]


def _format(response_format: Any) -> Any:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if not isinstance(schema, dict):
            raise _invalid("response_format.json_schema.schema", "must be a JSON schema object")
        return schema
    raise _invalid("response_format.type", "must be 'text', 'json_object' or 'json_schema'")


def _options(body: JSON) -> JSON:
    """Only what the caller set: Ollama's and the model's defaults stay in force otherwise."""
    options: JSON = {}
    for name, (option, low, high) in NUMBER_OPTIONS.items():
        value = _optional(body, name, float)
        if value is not None:
            if not low <= value <= high:
                raise _invalid(name, f"must be between {low:g} and {high:g}")
            options[option] = value
    for name in ("max_completion_tokens", "max_tokens"):  # the newer name wins
        value = _optional(body, name, int)
        if value is not None:
            if value < 1:
                raise _invalid(name, "must be at least 1")
            options["num_predict"] = value
            break
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        if stop:
            options["stop"] = stop
    elif stop is not None:
        raise _invalid("stop", "must be a string or an array of strings")
    seed = _optional(body, "seed", int)
    if seed is not None:
        options["seed"] = seed
    return options


def _optional(body: JSON, name: str, kind: type, prefix: str = "") -> Any:
    """`body[name]` if it has type `kind`; None when absent or null; a 400 otherwise."""
    value = body.get(name)
    if value is None:
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({dict: "an object", list: "an array"})
    raise _invalid(prefix + name, f"must be {names[kind]}")


def _invalid(param: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{param}' {problem}.", param=param)


# Responses ------------------------------------------------------------------------------------
