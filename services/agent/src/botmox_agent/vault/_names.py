"""Secret names and ``secret://`` references: the one home of the naming rule.

A name is one to eight ``/``-separated segments; a segment is lower-case ASCII letters, digits, ``.``,
``_`` and ``-``, starting with a letter or a digit (so no empty segment, no ``.``/``..``), at most 64
characters; a whole name at most 200 characters. ``proxmox/pve1`` is referred to as
``secret://proxmox/pve1``; everything that accepts a name accepts either spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from botmox_agent.vault._errors import InvalidSecretName

SCHEME: Final = "secret://"
MAX_NAME_LENGTH: Final = 200
MAX_SEGMENTS: Final = 8
_SEGMENT: Final = r"[a-z0-9][a-z0-9._-]{0,63}"
_NAME_RE: Final = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,{MAX_SEGMENTS - 1}}}")
RULE: Final = (
    "a secret name is 1 to 8 '/'-separated segments of lower-case letters, digits, '.', '_' and '-', "
    "each starting with a letter or a digit (e.g. proxmox/pve1, or secret://proxmox/pve1)"
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A validated secret name; ``str(ref)`` is its ``secret://`` reference."""

    name: str

    def __post_init__(self) -> None:
        validate_name(self.name)

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """``secret://proxmox/pve1`` or ``proxmox/pve1``; raises InvalidSecretName otherwise."""
        return cls(text[len(SCHEME) :] if text.startswith(SCHEME) else text)

    def __str__(self) -> str:
        return f"{SCHEME}{self.name}"


def validate_name(name: str) -> str:
    """Returns ``name`` if it follows the rule; raises InvalidSecretName (quoting at most 80 characters)."""
    if len(name) > MAX_NAME_LENGTH or _NAME_RE.fullmatch(name) is None:
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise InvalidSecretName(f"invalid secret name {shown!r}: {RULE}")
    return name
