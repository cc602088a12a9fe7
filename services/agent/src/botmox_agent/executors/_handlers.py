"""A handler runs one kind: typed params and a progress callback in, the result's JSON data out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from pydantic import BaseModel, JsonValue

from botmox_agent.executors._contract import Progress

Handler = Callable[[BaseModel, Progress], Awaitable[JsonValue]]
Handlers = Mapping[str, Handler]
P = TypeVar("P", bound=BaseModel)


def handler(model: type[P], run: Callable[[P, Progress], Awaitable[JsonValue]]) -> Handler:
    """``run`` as a :data:`Handler` that checks its params are a ``model`` (the kind's params model)."""

    async def checked(params: BaseModel, progress: Progress) -> JsonValue:
        if not isinstance(params, model):
            raise TypeError(f"expected {model.__name__} params, got {type(params).__name__}")
        return await run(params, progress)

    return checked
