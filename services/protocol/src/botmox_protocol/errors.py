"""Protocol error codes and their exceptions: the one home of every code and its message.

Each `ProtocolError` subclass owns exactly one `ErrorCode`; the `error` frame a peer sends back is built
from the exception (`to_frame`) and turned back into one on the other side (`error_from_frame`), so a
code means the same thing on both ends. Messages name what was wrong and where, never the offending
value: a frame may carry names of secrets, and an error message must not echo anything it received.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from botmox_protocol.limits import MAX_MESSAGE_CHARS

if TYPE_CHECKING:
    from botmox_protocol.frames import ErrorFrame


class ErrorCode(StrEnum):
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_FRAME = "INVALID_FRAME"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    UNKNOWN_COMMAND_KIND = "UNKNOWN_COMMAND_KIND"
    INVALID_PARAMS = "INVALID_PARAMS"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"


class ProtocolError(Exception):
    """A frame that breaks the protocol. `ref` is the offending frame's id when it could be read."""

    code: ClassVar[ErrorCode]
    summary: ClassVar[str]

    def __init__(self, detail: str = "", *, ref: str | None = None) -> None:
        text = f"{self.summary}: {detail}" if detail else self.summary
        self.message = text[:MAX_MESSAGE_CHARS]
        self.ref = ref
        super().__init__(self.message)

    def to_frame(self, frame_id: str) -> ErrorFrame:
        from botmox_protocol.frames import ErrorFrame

        return ErrorFrame(id=frame_id, code=self.code, message=self.message, ref=self.ref)


class FrameTooLarge(ProtocolError):
    code = ErrorCode.FRAME_TOO_LARGE
    summary = "frame exceeds the size limit"


class InvalidJson(ProtocolError):
    code = ErrorCode.INVALID_JSON
    summary = "frame is not valid UTF-8 JSON"


class InvalidFrame(ProtocolError):
    code = ErrorCode.INVALID_FRAME
    summary = "frame does not match its schema"


class UnsupportedVersion(ProtocolError):
    code = ErrorCode.UNSUPPORTED_VERSION
    summary = "protocol version not supported"


class UnknownType(ProtocolError):
    code = ErrorCode.UNKNOWN_TYPE
    summary = "unknown frame type"


class UnknownCommandKind(ProtocolError):
    code = ErrorCode.UNKNOWN_COMMAND_KIND
    summary = "command kind is not allowed"


class InvalidParams(ProtocolError):
    code = ErrorCode.INVALID_PARAMS
    summary = "command params do not match the kind's schema"


class OutOfOrder(ProtocolError):
    code = ErrorCode.OUT_OF_ORDER
    summary = "frame not allowed at this point of the session"


class UnknownCommand(ProtocolError):
    code = ErrorCode.UNKNOWN_COMMAND
    summary = "no such command on this connection"


ERRORS_BY_CODE: Mapping[ErrorCode, type[ProtocolError]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            FrameTooLarge,
            InvalidJson,
            InvalidFrame,
            UnsupportedVersion,
            UnknownType,
            UnknownCommandKind,
            InvalidParams,
            OutOfOrder,
            UnknownCommand,
        )
    }
)


def error_from_frame(frame: ErrorFrame) -> ProtocolError:
    """The exception a peer's `error` frame stands for (its message kept as sent)."""
    error = ERRORS_BY_CODE[frame.code](ref=frame.ref)
    error.message = frame.message
    error.args = (frame.message,)
    return error
