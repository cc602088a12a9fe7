"""The allowlist of command kinds: a kind's name, what it does, and the schema of its params.

A `command` frame whose kind is not in the registry, or whose params do not validate against the kind's
schema, is refused before anything runs. The registry is immutable; executors (later) pair each kind
with the code that runs it, and the API checks a command against an agent's declared capabilities.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import BaseModel, ValidationError

from botmox_protocol.errors import InvalidParams, UnknownCommandKind
from botmox_protocol.validation import describe_errors


@dataclass(frozen=True)
class CommandKind:
    name: str
    params: type[BaseModel]
    description: str
    # Changes state on the target (start a VM) rather than only reading it (list VMs).
    mutating: bool


class CommandRegistry:
    def __init__(self, kinds: Iterable[CommandKind]) -> None:
        by_name: dict[str, CommandKind] = {}
        for kind in kinds:
            if kind.name in by_name:
                raise ValueError(f"command kind {kind.name!r} declared twice")
            by_name[kind.name] = kind
        self._kinds: Mapping[str, CommandKind] = MappingProxyType(by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[CommandKind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def names(self) -> frozenset[str]:
        return frozenset(self._kinds)

    def get(self, name: str, *, ref: str | None = None) -> CommandKind:
        try:
            return self._kinds[name]
        except KeyError:
            # The name is not echoed: an error message repeats nothing it received.
            raise UnknownCommandKind(ref=ref) from None

    def validate(self, name: str, params: Mapping[str, object], *, ref: str | None = None) -> BaseModel:
        """The typed params of a command of kind `name`; `UnknownCommandKind` or `InvalidParams`."""
        kind = self.get(name, ref=ref)
        try:
            return kind.params.model_validate(params)
        except ValidationError as exc:
            raise InvalidParams(describe_errors(exc), ref=ref) from None

    def with_kinds(self, *kinds: CommandKind) -> CommandRegistry:
        return CommandRegistry([*self._kinds.values(), *kinds])
