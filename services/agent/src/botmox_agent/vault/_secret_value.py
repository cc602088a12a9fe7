"""``SecretValue``: a secret in memory that never prints itself.

``repr``, ``str`` and ``format`` are redacted, so a value that ends up in a log call, an f-string, an
exception's arguments or a traceback's locals shows as ``SecretValue('**********')``. The clear text comes
out only through :meth:`SecretValue.reveal`, which is easy to find in review. Pickling is refused so a value
cannot leave the process by accident (multiprocessing, caches). Python cannot wipe a string from memory:
see docs/agent-security.md for what that means.
"""

from __future__ import annotations

import hmac
from typing import Final, NoReturn

REDACTED: Final = "**********"


class SecretValue:
    """A secret string whose representations are redacted; ``reveal()`` returns the clear text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretValue holds a str")
        self._value = value

    def reveal(self) -> str:
        """The clear text. Call it only where the value is used (a request header, stdout on --reveal)."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        # Constant time, so a comparison does not leak how much of a guess was right.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # equal values must not be findable through a hash table

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")
