"""Request-body validation with zod-like messages, so the frontend's error display keeps working.

Errors are collected as ``{"formErrors": [...], "fieldErrors": {"<dotted.path>": [...]}}`` (zod's
``flatten()``) and raised as one 400 "Invalid request body".
"""

from __future__ import annotations

from typing import Final

from botmox_api.errors import BadRequest
from botmox_api.model import JsonValue

INVALID_BODY: Final = "Invalid request body"


def received_type(value: object) -> str:
    """zod's name for a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Issues:
    def __init__(self) -> None:
        self.form: list[str] = []
        self.fields: dict[str, list[str]] = {}

    def add(self, path: tuple[str, ...], message: str) -> None:
        if path:
            self.fields.setdefault(".".join(path), []).append(message)
        else:
            self.form.append(message)

    def __bool__(self) -> bool:
        return bool(self.form or self.fields)

    def error(self) -> BadRequest:
        return BadRequest(INVALID_BODY, details={"formErrors": self.form, "fieldErrors": self.fields})

    def raise_if_any(self) -> None:
        if self:
            raise self.error()


def form_error(message: str) -> BadRequest:
    issues = Issues()
    issues.add((), message)
    return issues.error()


def check_integer_range(
    value: JsonValue, minimum: int, maximum: int, issues: Issues, path: tuple[str, ...]
) -> None:
    """``z.number().int().min(minimum).max(maximum)``: a JSON number without a fractional part."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        issues.add(path, f"Expected number, received {received_type(value)}")
        return
    if isinstance(value, float) and not value.is_integer():
        issues.add(path, "Expected integer, received float")
    if value < minimum:
        issues.add(path, f"Number must be greater than or equal to {minimum}")
    elif value > maximum:
        issues.add(path, f"Number must be less than or equal to {maximum}")
