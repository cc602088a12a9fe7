"""Reading a write's body in the order of ``docs/contracts/api-v1.md``: size (413), media type (415),
JSON (400).

The size is checked on ``Content-Length`` before anything is read and again while streaming, so a
client that lies about (or omits) the length still cannot make the server buffer more than the limit.
JSON whose strings or keys hold a lone UTF-16 surrogate (``"\\ud800"``) is malformed too: that is no
text, so no store could keep it and no answer could quote it.
"""

from __future__ import annotations

import json
import re
from typing import Final, NoReturn

from starlette.requests import Request

from botmox_api.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from botmox_api.model import JsonValue

_JSON_MEDIA_TYPE: Final = re.compile(r"^application/(?:json|[!#$&^_.+\w-]+\+json)$")
MALFORMED_JSON: Final = "Malformed JSON body"
# The parser joins an escaped surrogate pair into one character, so any surrogate left is lone.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body exceeds {max_bytes} bytes", details={"max_bytes": max_bytes})


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return _JSON_MEDIA_TYPE.match(media_type) is not None


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON, whatever Python's parser tolerates.
    raise ValueError(name)


def _holds_lone_surrogate(value: JsonValue) -> bool:
    # Iterative: the parser accepts nesting deeper than a recursive walk would survive.
    stack: list[JsonValue] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


async def read_json_body(request: Request, max_bytes: int) -> JsonValue:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > max_bytes:
            raise _too_large(max_bytes)
    if not is_json_media_type(request.headers.get("content-type")):
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        text = bytes(buffer).decode("utf-8")
        value: JsonValue = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest(MALFORMED_JSON) from None
    if _holds_lone_surrogate(value):
        raise BadRequest(MALFORMED_JSON)
    return value
