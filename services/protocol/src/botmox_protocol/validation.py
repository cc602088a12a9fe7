"""Pydantic validation errors as one line of text that names fields and rules, never input values."""

from __future__ import annotations

from pydantic import ValidationError

_MAX_LISTED = 5


def describe_errors(exc: ValidationError) -> str:
    # `include_input=False`: an error message must not echo what it refused (it may name a secret).
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    parts = []
    for error in errors[:_MAX_LISTED]:
        location = ".".join(str(part) for part in error["loc"]) or "(frame)"
        parts.append(f"{location}: {error['msg']}")
    if len(errors) > _MAX_LISTED:
        parts.append(f"and {len(errors) - _MAX_LISTED} more")
    return "; ".join(parts)
