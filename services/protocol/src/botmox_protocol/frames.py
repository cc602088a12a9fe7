"""The frames of the agent tunnel, version 1: one model per `type`, all sharing one envelope.

Every frame is a JSON object `{"v": 1, "type": ..., "id": ..., <body>}`. `id` is unique per frame
sent (a fresh one for each transmission, re-sends included); commands are correlated by their own
`command_id`, which stays the same across re-sends and is the key of at-most-once execution. The wire
is strict: `codec.parse_frame` requires every field below to be present (defaults exist only for
building frames in code) and refuses any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from botmox_protocol.errors import ErrorCode
from botmox_protocol.limits import (
    MAX_MESSAGE_CHARS,
    MAX_PARAMS_BYTES,
    MAX_PROGRESS_MESSAGE_CHARS,
    MAX_RESULT_DATA_BYTES,
    json_text_bytes,
)

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS = frozenset({PROTOCOL_VERSION})

# Frame, command and agent ids: UUIDs in practice, any short token of these characters on the wire.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
Identifier = Annotated[StrictStr, StringConstraints(pattern=ID_PATTERN)]
# `syncthing.folder.rescan`: lowercase dotted words, at least two.
KindName = Annotated[
    StrictStr, StringConstraints(max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
]
AgentVersion = Annotated[StrictStr, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")]
# Error codes of a command's result: the executor's own (`PROXMOX_UNREACHABLE`), upper snake case.
ResultCode = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
Text = Annotated[StrictStr, StringConstraints(max_length=MAX_MESSAGE_CHARS)]
ProgressText = Annotated[StrictStr, StringConstraints(max_length=MAX_PROGRESS_MESSAGE_CHARS)]


def _rfc3339_text(value: object) -> object:
    # Pydantic's lax datetime also takes numbers (Unix time); the wire carries RFC 3339 text only.
    if not isinstance(value, str | datetime):
        raise ValueError("expected an RFC 3339 timestamp string")
    return value


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:00:00-05:00 is past datetime.max in UTC; a ValueError makes it a refusal.
        raise ValueError("timestamp out of range in UTC") from None


# An instant with its offset (naive times are refused), normalised to UTC; written with a `Z`.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_as_utc)]


class _Model(BaseModel):
    # allow_inf_nan: JSON has no infinity (1e400 reads as one); such a number is refused, not nulled.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Envelope(_Model):
    """What every frame carries: the protocol version and the frame's own id."""

    # Only the version this module speaks (parse_frame tells an unsupported one apart first).
    v: Literal[1] = PROTOCOL_VERSION
    id: Identifier


class HelloFrame(Envelope):
    """Agent -> server, first frame of a connection: who is speaking and which command kinds it runs."""

    type: Literal["hello"] = "hello"
    agent_id: Identifier
    agent_version: AgentVersion
    capabilities: tuple[KindName, ...] = Field(max_length=256)

    @model_validator(mode="after")
    def _unique_capabilities(self) -> Self:
        if len(set(self.capabilities)) != len(self.capabilities):
            raise ValueError("capabilities must not repeat a kind")
        return self


class Limits(_Model):
    max_frame_bytes: StrictInt = Field(ge=1024)
    max_in_flight_commands: StrictInt = Field(ge=1)


class WelcomeFrame(Envelope):
    """Server -> agent, answer to `hello`: the session is open, with these terms."""

    type: Literal["welcome"] = "welcome"
    protocol_version: StrictInt
    server_time: Timestamp
    heartbeat_interval_s: StrictInt = Field(ge=1, le=3600)
    heartbeat_timeout_s: StrictInt = Field(ge=2, le=7200)
    limits: Limits

    @model_validator(mode="after")
    def _timeout_outlasts_interval(self) -> Self:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed heartbeat_interval_s")
        return self


class HeartbeatFrame(Envelope):
    """Agent -> server every `heartbeat_interval_s`: the agent is alive and its session is open."""

    type: Literal["heartbeat"] = "heartbeat"


class CommandFrame(Envelope):
    """Server -> agent: run `kind` with `params` before `deadline` (params checked by the kind registry)."""

    type: Literal["command"] = "command"
    command_id: Identifier
    kind: KindName
    params: dict[StrictStr, JsonValue]
    deadline: Timestamp

    @model_validator(mode="after")
    def _params_within_limit(self) -> Self:
        if json_text_bytes(self.params) > MAX_PARAMS_BYTES:
            raise ValueError(f"params over {MAX_PARAMS_BYTES} bytes")
        return self


class CommandAckFrame(Envelope):
    """Agent -> server: the command is journaled; it will not run a second time."""

    type: Literal["command.ack"] = "command.ack"
    command_id: Identifier


class CommandProgressFrame(Envelope):
    """Agent -> server, optional, between ack and result."""

    type: Literal["command.progress"] = "command.progress"
    command_id: Identifier
    percent: StrictInt | None = Field(default=None, ge=0, le=100)
    message: ProgressText | None = None


class CommandError(_Model):
    code: ResultCode
    message: Text


class CommandResultFrame(Envelope):
    """Agent -> server: the outcome, `ok` with `data`, or not `ok` with an `error`."""

    type: Literal["command.result"] = "command.result"
    command_id: Identifier
    ok: StrictBool
    data: JsonValue = None
    error: CommandError | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if self.ok and self.error is not None:
            raise ValueError("an ok result has no error")
        if not self.ok and (self.error is None or self.data is not None):
            raise ValueError("a failed result has an error and null data")
        if self.data is not None and json_text_bytes(self.data) > MAX_RESULT_DATA_BYTES:
            raise ValueError(f"data over {MAX_RESULT_DATA_BYTES} bytes")
        return self


class ErrorFrame(Envelope):
    """Either way: the frame `ref` (null when its id could not be read) broke the protocol."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: Text
    ref: Identifier | None = None


Frame = Annotated[
    HelloFrame
    | WelcomeFrame
    | HeartbeatFrame
    | CommandFrame
    | CommandAckFrame
    | CommandProgressFrame
    | CommandResultFrame
    | ErrorFrame,
    Field(discriminator="type"),
]

FRAME_MODELS: Mapping[str, type[Envelope]] = MappingProxyType(
    {
        model.model_fields["type"].default: model
        for model in (
            HelloFrame,
            WelcomeFrame,
            HeartbeatFrame,
            CommandFrame,
            CommandAckFrame,
            CommandProgressFrame,
            CommandResultFrame,
            ErrorFrame,
        )
    }
)

# Who may send what; a frame arriving from the wrong side is out of order.
SENT_BY_AGENT = frozenset(
    {"hello", "heartbeat", "command.ack", "command.progress", "command.result", "error"}
)
SENT_BY_SERVER = frozenset({"welcome", "command", "error"})


def frame_fields(model: type[BaseModel]) -> frozenset[str]:
    """Every key a frame of this model carries on the wire."""
    return frozenset(model.model_fields)
