"""Validating the bodies of the agent endpoints (``routes/agents.py``): a registration and a command.

The body is read by ``request_body.read_json_body`` (413, 415, malformed JSON 400, as every write);
what it must hold is checked here and reported like the settings bodies, zod-like, in one 400
"Invalid request body". Unknown members are ignored, as for the storage policy.

The shape is the API's; the allowlist of command kinds, a kind among the agent's capabilities and
the 16 KiB bound of ``params`` are the database's (one home: ``botmox.agent_command_kinds()`` and
the enqueue function), whose refusals come back as 400s with its words (``errors.from_agent_refusal``).
The kind's own parameters are checked by the agent's executor, which answers a ``command.result``
with an error code; the API does not hold the protocol package's registry (its image would need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from botmox_api.agents import DEFAULT_COMMAND_DEADLINE_S, MAX_COMMAND_DEADLINE_S
from botmox_api.model import JsonObject, JsonValue
from botmox_api.request_body import Issues, check_integer_range, form_error, received_type

MAX_CODE_CHARS: Final = 128
MAX_NAME_CHARS: Final = 100
MAX_VERSION_CHARS: Final = 64
MAX_KIND_CHARS: Final = 64
MAX_CAPABILITIES: Final = 64
"""Bounds the database also holds (``agents_name_check``, ``agents_version_check``); checked here
first so the answer names the field. A pairing code the API issued is 43 characters."""


@dataclass(frozen=True, slots=True)
class Registration:
    code: str
    name: str
    version: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommandRequest:
    kind: str
    params: JsonObject
    deadline_s: int


def _text(body: JsonObject, name: str, max_chars: int, issues: Issues) -> str:
    if name not in body:
        issues.add((name,), "Required")
        return ""
    value = body[name]
    if not isinstance(value, str):
        issues.add((name,), f"Expected string, received {received_type(value)}")
        return ""
    if not value.strip():
        issues.add((name,), "String must contain at least 1 non-blank character(s)")
    elif len(value) > max_chars:
        issues.add((name,), f"String must contain at most {max_chars} character(s)")
    return value


def _object(body: JsonValue) -> JsonObject:
    if not isinstance(body, dict):
        raise form_error(f"Expected object, received {received_type(body)}")
    return body


def validate_registration(body: JsonValue) -> Registration:
    """``{"code", "name", "version", "capabilities": [kinds]}``; raises ``BadRequest``."""
    fields = _object(body)
    issues = Issues()
    code = _text(fields, "code", MAX_CODE_CHARS, issues)
    name = _text(fields, "name", MAX_NAME_CHARS, issues)
    version = _text(fields, "version", MAX_VERSION_CHARS, issues)
    capabilities: list[str] = []
    raw = fields.get("capabilities", [])
    if not isinstance(raw, list):
        issues.add(("capabilities",), f"Expected array, received {received_type(raw)}")
    elif len(raw) > MAX_CAPABILITIES:
        issues.add(("capabilities",), f"Array must contain at most {MAX_CAPABILITIES} element(s)")
    else:
        for index, kind in enumerate(raw):
            at = ("capabilities", str(index))
            if not isinstance(kind, str):
                issues.add(at, f"Expected string, received {received_type(kind)}")
            elif not kind or len(kind) > MAX_KIND_CHARS:
                issues.add(at, f"String must contain 1 to {MAX_KIND_CHARS} character(s)")
            elif kind in capabilities:
                issues.add(at, "Duplicate capability")
            else:
                capabilities.append(kind)
    issues.raise_if_any()
    return Registration(code=code, name=name, version=version, capabilities=tuple(capabilities))


def validate_command(body: JsonValue) -> CommandRequest:
    """``{"kind", "params"?: {}, "deadline_s"?: 1..86400}``; raises ``BadRequest``."""
    fields = _object(body)
    issues = Issues()
    kind = _text(fields, "kind", MAX_KIND_CHARS, issues)
    params: JsonObject = {}
    raw = fields.get("params", {})
    if isinstance(raw, dict):
        params = raw
    else:
        issues.add(("params",), f"Expected object, received {received_type(raw)}")
    deadline: JsonValue = fields.get("deadline_s", DEFAULT_COMMAND_DEADLINE_S)
    check_integer_range(deadline, 1, MAX_COMMAND_DEADLINE_S, issues, ("deadline_s",))
    issues.raise_if_any()
    assert isinstance(deadline, int | float)
    return CommandRequest(kind=kind, params=params, deadline_s=int(deadline))
