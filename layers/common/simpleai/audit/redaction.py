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


def redact_request_body(body: bytes, *, store_images: bool = False) -> str | None:
    """The request body as the audit log keeps it: verbatim text, images replaced.

    A body that is not JSON, or holds no inline image, is kept byte for byte (decoded as UTF-8);
    only a body whose images were replaced is re-serialised.
    """
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    if store_images:
        return text
    if b"image" not in body and b"\\u" not in body:
        return text  # no image key, not even an escaped one: no need to parse
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # nested past the parser's limit: not a chat request
        return text
    if not _replace_images(parsed):
        return text
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


def _replace_images(request: Any) -> bool:
    """Replace, in place, images in OpenAI content parts and Ollama-style `images` lists."""
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return False
    replaced = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                replaced |= _replace_image_part(part)
        images = message.get("images")
        if isinstance(images, list):
            for index, image in enumerate(images):
                if isinstance(image, str):
                    images[index] = image_placeholder(_decode(image))
                    replaced = True
    return replaced


def _replace_image_part(part: Any) -> bool:
    if not isinstance(part, dict) or not isinstance(part.get("image_url"), dict | str):
        return False
    image_url = part["image_url"]
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:"):
        return False  # a remote URL is a reference, not image data: keep it
    header, _, payload = url.partition(",")
    media_type = header[len("data:") :].split(";")[0] or None
    placeholder = image_placeholder(_decode(payload), media_type)
    if isinstance(image_url, dict) and "detail" in image_url:
        placeholder["detail"] = image_url["detail"]
    part["image_url"] = placeholder
    return True


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
