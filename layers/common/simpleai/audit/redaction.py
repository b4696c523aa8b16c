"""What of a request and its response goes into the audit log.

The request body is kept whole, except images: a base64 image is replaced by
`{"sha256", "bytes", "media_type"}` (enough to prove later which image was sent, without keeping
megabytes of pixels that may be personal data) unless `AUDIT_STORE_IMAGES=true`. The response body
is cut at `AUDIT_MAX_BODY_BYTES` and flagged `response_truncated`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

# Magic numbers of the formats vision models accept; anything else is recorded as octet-stream.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
)


def image_placeholder(data: bytes, media_type: str | None = None) -> dict[str, Any]:
    """What the audit log keeps of an image instead of its bytes."""
    if media_type is None:
        media_type = next(
            (kind for magic, kind in _SIGNATURES if data.startswith(magic)),
            "application/octet-stream",
        )
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "media_type": media_type,
    }


NOT_PARSED: Any = object()
"""`parsed` when the route never parsed the body (refused before reading it, or not JSON)."""


def redact_request_body(
    body: bytes, *, store_images: bool = False, parsed: Any = NOT_PARSED
) -> str | None:
    """The request body as the audit log keeps it: verbatim text, images replaced.

    A body that is not JSON, or holds no inline image, is kept byte for byte (decoded as UTF-8);
    only a body whose images were replaced is re-serialised. `parsed` is the body as the route
    already parsed it, if it did: a body with images is then not parsed a second time (~5 ms
    for a 4 MiB image), and is left as it is (the placeholders go into copies).
    """
    if not body:
        return None
    if store_images or (b"image" not in body and b"\\u" not in body):
        # No image key, not even an escaped one: no need to parse.
        return body.decode("utf-8", "replace")
    if parsed is NOT_PARSED:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # nested past the parser's limit: not a chat request
            return body.decode("utf-8", "replace")
    redacted = _without_images(parsed)
    if redacted is None:
        return body.decode("utf-8", "replace")
    return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))


def _without_images(request: Any) -> Any | None:
    """`request` with the images of its OpenAI content parts and Ollama-style `images` lists
    replaced by placeholders, in new containers where anything changed; None if none were."""
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return None
    redacted = [_message_without_images(message) for message in messages]
    if all(new is old for new, old in zip(redacted, messages, strict=True)):
        return None
    return {**request, "messages": redacted}


def _message_without_images(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    changes: dict[str, Any] = {}
    content = message.get("content")
    if isinstance(content, list):
        parts = [_part_without_image(part) for part in content]
        if any(new is not old for new, old in zip(parts, content, strict=True)):
            changes["content"] = parts
    images = message.get("images")
    if isinstance(images, list) and any(isinstance(image, str) for image in images):
        changes["images"] = [
            image_placeholder(_decode(image)) if isinstance(image, str) else image
            for image in images
        ]
    return {**message, **changes} if changes else message


def _part_without_image(part: Any) -> Any:
    if not isinstance(part, dict) or not isinstance(part.get("image_url"), dict | str):
        return part
    image_url = part["image_url"]
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:"):
        return part  # a remote URL is a reference, not image data: keep it
    header, _, payload = url.partition(",")
    media_type = header[len("data:") :].split(";")[0] or None
    placeholder = image_placeholder(_decode(payload), media_type)
    if isinstance(image_url, dict) and "detail" in image_url:
        placeholder["detail"] = image_url["detail"]
    return {**part, "image_url": placeholder}


def _decode(payload: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return payload.encode()  # not base64 after all: hash what was sent


def truncate_response(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` UTF-8 bytes (never inside a character), and whether it was."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text, False
    return encoded[:limit].decode("utf-8", "ignore"), True
