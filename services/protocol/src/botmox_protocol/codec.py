"""Frames to and from the wire: `parse_frame` refuses anything off the protocol with a `ProtocolError`
(never another exception), `encode_frame` writes compact JSON and refuses to produce what the peer would
refuse.

Checks run cheapest first: size before decoding, UTF-8 and JSON, the envelope (object, `v`, `type`),
then the frame's schema, then a command's kind and params against the registry.
"""

from __future__ import annotations

import json
import re
from typing import NoReturn, cast

from pydantic import ValidationError

from botmox_protocol.errors import (
    FrameTooLarge,
    InvalidFrame,
    InvalidJson,
    UnknownType,
    UnsupportedVersion,
)
from botmox_protocol.frames import (
    FRAME_MODELS,
    ID_PATTERN,
    SUPPORTED_VERSIONS,
    CommandFrame,
    Frame,
    frame_fields,
)
from botmox_protocol.kinds import COMMAND_KINDS
from botmox_protocol.limits import MAX_FRAME_BYTES
from botmox_protocol.registry import CommandRegistry
from botmox_protocol.validation import describe_errors

_ID = re.compile(ID_PATTERN)


def parse_frame(
    data: str | bytes,
    *,
    registry: CommandRegistry = COMMAND_KINDS,
    max_bytes: int = MAX_FRAME_BYTES,
) -> Frame:
    """The frame in one WebSocket message, or a `ProtocolError` saying what is wrong with it."""
    raw = _within_limit(data, max_bytes)
    obj = _load_json(raw)
    if not isinstance(obj, dict):
        raise InvalidFrame("a frame is a JSON object")
    ref = _readable_id(obj)
    version = obj.get("v")
    if "v" not in obj or type(version) is not int:
        raise InvalidFrame("v: an integer protocol version is required", ref=ref)
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(f"v {version}; supported: {sorted(SUPPORTED_VERSIONS)}", ref=ref)
    frame_type = obj.get("type")
    if not isinstance(frame_type, str):
        raise InvalidFrame("type: a string is required", ref=ref)
    model = FRAME_MODELS.get(frame_type)
    if model is None:
        raise UnknownType(f"type is none of {', '.join(FRAME_MODELS)}", ref=ref)
    missing = frame_fields(model) - obj.keys()
    if missing:
        raise InvalidFrame(f"missing field(s): {', '.join(sorted(missing))}", ref=ref)
    try:
        frame = cast("Frame", model.model_validate(obj))
    except ValidationError as exc:
        raise InvalidFrame(describe_errors(exc), ref=ref) from None
    if isinstance(frame, CommandFrame):
        registry.validate(frame.kind, frame.params, ref=ref)
    return frame


def encode_frame(frame: Frame, *, max_bytes: int = MAX_FRAME_BYTES) -> str:
    """The frame as compact JSON text; `FrameTooLarge` rather than send what the peer would refuse."""
    text = frame.model_dump_json()
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise FrameTooLarge(f"{frame.type} frame over {max_bytes} bytes", ref=frame.id)
    return text


def _within_limit(data: str | bytes, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise FrameTooLarge(f"more than {max_bytes} bytes")
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError:
            raise InvalidJson("text is not encodable as UTF-8") from None
        if len(data) > max_bytes:
            raise FrameTooLarge(f"more than {max_bytes} bytes")
    return data


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("an object repeats a key")
    return obj


def _load_json(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise InvalidJson("bytes are not UTF-8") from None
    except RecursionError:
        raise InvalidJson("nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError and the hooks' refusals
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidJson(reason) from None


def _readable_id(obj: dict[str, object]) -> str | None:
    frame_id = obj.get("id")
    return frame_id if isinstance(frame_id, str) and _ID.match(frame_id) else None
