"""Events a Realtime session delivers to its subscribers, and the conversation history items.

All are frozen, slotted dataclasses: cheap to create per audio delta, safe to hand to several subscribers, and
matchable with ``match event: case RealtimeAudioEvent(audio=pcm): ...``. Each class also carries a short
``type`` tag (a class attribute, like openai-agents' event ``type``) for logging and filtering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

if TYPE_CHECKING:
    from fastvoice.realtime.agent import Agent

__all__ = [
    "AgentState",
    "AssistantMessageItem",
    "ConnectionStatus",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "HistoryItem",
    "RealtimeAgentEndEvent",
    "RealtimeAgentStartEvent",
    "RealtimeAgentStateEvent",
    "RealtimeAudioEndEvent",
    "RealtimeAudioEvent",
    "RealtimeAudioInterruptedEvent",
    "RealtimeConnectionEvent",
    "RealtimeErrorEvent",
    "RealtimeEvent",
    "RealtimeEventsDroppedEvent",
    "RealtimeGuardrailTrippedEvent",
    "RealtimeHandoffEvent",
    "RealtimeHistoryUpdatedEvent",
    "RealtimeMessageLostEvent",
    "RealtimeRawModelEvent",
    "RealtimeToolApprovalRequiredEvent",
    "RealtimeToolCallEvent",
    "RealtimeToolEndEvent",
    "RealtimeToolStartEvent",
    "RealtimeTranscriptEvent",
    "ServerEventError",
    "SystemMessageItem",
    "UserMessageItem",
    "history_item_from_server",
]

AgentState: TypeAlias = Literal["idle", "listening", "thinking", "speaking"]
ConnectionStatus: TypeAlias = Literal["connected", "reconnecting", "disconnected"]
_AGENT_STATES = ("idle", "listening", "thinking", "speaking")
_CONNECTION_STATUSES = ("connected", "reconnecting", "disconnected")


def _parse_args(args: str) -> dict[str, Any]:
    try:
        value = json.loads(args or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
    return value


# ---- session events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RealtimeAudioEvent:
    """A chunk of assistant audio (decoded bytes in the session's output format)."""

    type: ClassVar[str] = "audio"
    audio: bytes
    item_id: str
    content_index: int = 0
    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class RealtimeAudioEndEvent:
    """The assistant finished sending audio for this content part."""

    type: ClassVar[str] = "audio_end"
    item_id: str
    content_index: int = 0


@dataclass(frozen=True, slots=True)
class RealtimeAudioInterruptedEvent:
    """Playback must stop now (user barge-in or ``interrupt()``); ``audio_end_ms`` is where it was cut."""

    type: ClassVar[str] = "audio_interrupted"
    item_id: str
    content_index: int = 0
    audio_end_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RealtimeAgentStartEvent:
    """A response from ``agent`` began."""

    type: ClassVar[str] = "agent_start"
    agent: Agent


@dataclass(frozen=True, slots=True)
class RealtimeAgentEndEvent:
    """A response from ``agent`` finished."""

    type: ClassVar[str] = "agent_end"
    agent: Agent


@dataclass(frozen=True, slots=True)
class RealtimeAgentStateEvent:
    """The conversational state changed: idle, listening (user speaking), thinking, speaking."""

    type: ClassVar[str] = "agent_state"
    state: AgentState

    def __post_init__(self) -> None:
        if self.state not in _AGENT_STATES:
            raise ValueError(f"state must be one of {_AGENT_STATES}, got {self.state!r}")


@dataclass(frozen=True, slots=True)
class RealtimeHandoffEvent:
    """The session switched agents because the model called a handoff tool."""

    type: ClassVar[str] = "handoff"
    from_agent: Agent
    to_agent: Agent


@dataclass(frozen=True, slots=True)
class RealtimeToolCallEvent:
    """The model called a tool. For client (dict) tools, answer with
    ``session.send_tool_result(call_id, ...)``.

    ``args`` is the raw JSON text the model produced; :meth:`parsed_args` decodes it.
    """

    type: ClassVar[str] = "tool_call"
    name: str
    args: str
    call_id: str

    def parsed_args(self) -> dict[str, Any]:
        return _parse_args(self.args)


@dataclass(frozen=True, slots=True)
class RealtimeToolStartEvent:
    """The session started running a function tool."""

    type: ClassVar[str] = "tool_start"
    name: str
    args: str
    call_id: str


@dataclass(frozen=True, slots=True)
class RealtimeToolEndEvent:
    """A function tool finished; ``output`` is what was sent to the model (the error text if it failed)."""

    type: ClassVar[str] = "tool_end"
    name: str
    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class RealtimeToolApprovalRequiredEvent:
    """A ``needs_approval`` tool was called; answer with ``approve_tool_call`` / ``reject_tool_call``."""

    type: ClassVar[str] = "tool_approval_required"
    name: str
    args: str
    call_id: str

    def parsed_args(self) -> dict[str, Any]:
        return _parse_args(self.args)


@dataclass(frozen=True, slots=True)
class RealtimeTranscriptEvent:
    """Transcript text: user input transcription or assistant audio transcript.

    Deltas have ``is_final=False`` and carry only the new text; the final event carries the whole transcript.
    """

    type: ClassVar[str] = "transcript"
    role: Literal["user", "assistant"]
    text: str
    is_final: bool
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class RealtimeHistoryUpdatedEvent:
    """The conversation history changed; ``history`` is the full, ordered history."""

    type: ClassVar[str] = "history_updated"
    history: tuple[HistoryItem, ...]


@dataclass(frozen=True, slots=True)
class RealtimeGuardrailTrippedEvent:
    """An output guardrail tripped on ``text``; the response was cancelled."""

    type: ClassVar[str] = "guardrail_tripped"
    guardrail: str
    text: str
    output_info: Any = None


@dataclass(frozen=True, slots=True)
class RealtimeConnectionEvent:
    """The WebSocket connection changed state (``attempt`` counts reconnection attempts)."""

    type: ClassVar[str] = "connection"
    status: ConnectionStatus
    attempt: int = 0
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _CONNECTION_STATUSES:
            raise ValueError(f"status must be one of {_CONNECTION_STATUSES}, got {self.status!r}")


@dataclass(frozen=True, slots=True)
class RealtimeErrorEvent:
    """Something went wrong; ``error`` is the server's error object (a dict) or a Python exception."""

    type: ClassVar[str] = "error"
    error: Any


@dataclass(frozen=True, slots=True)
class RealtimeMessageLostEvent:
    """A client message the server never acknowledged was not re-sent after a reconnect, because doing so
    would be unsafe or meaningless on the new connection (e.g. a ``response.cancel`` for a response that ended
    with the old connection, a ``conversation.item.truncate`` of audio the new session never had).

    ``event`` is the client event exactly as it was sent; ``reason`` says why it was not re-sent. Every
    other unacknowledged message is re-sent, so with this event nothing is lost silently."""

    type: ClassVar[str] = "message_lost"
    event_type: str
    event: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class RealtimeEventsDroppedEvent:
    """This subscriber (or the ``async for`` stream) fell behind: ``count`` events were dropped, the oldest
    first, just before this one (``total``: all dropped for it so far). Raise the bound
    (``subscriber_buffer`` / ``event_buffer``) or handle events faster."""

    type: ClassVar[str] = "events_dropped"
    count: int
    total: int


class ServerEventError(ValueError):
    """A server event the session could not use (malformed JSON, a missing or wrongly typed field);
    delivered inside a :class:`RealtimeErrorEvent`. ``event_type`` names the event (``None`` if it had no
    type). Undecodable audio deltas are reported as ``fastvoice.AudioFormatError`` instead. The session goes
    on with the next event."""

    def __init__(self, message: str, event_type: str | None = None) -> None:
        super().__init__(message)
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class RealtimeRawModelEvent:
    """Every server event, parsed, as received (also unknown ones)."""

    type: ClassVar[str] = "raw_model_event"
    data: dict[str, Any]


RealtimeEvent: TypeAlias = (
    RealtimeAudioEvent
    | RealtimeAudioEndEvent
    | RealtimeAudioInterruptedEvent
    | RealtimeAgentStartEvent
    | RealtimeAgentEndEvent
    | RealtimeAgentStateEvent
    | RealtimeHandoffEvent
    | RealtimeToolCallEvent
    | RealtimeToolStartEvent
    | RealtimeToolEndEvent
    | RealtimeToolApprovalRequiredEvent
    | RealtimeTranscriptEvent
    | RealtimeHistoryUpdatedEvent
    | RealtimeGuardrailTrippedEvent
    | RealtimeConnectionEvent
    | RealtimeErrorEvent
    | RealtimeMessageLostEvent
    | RealtimeEventsDroppedEvent
    | RealtimeRawModelEvent
)


# ---- history items
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserMessageItem:
    """Something the user said or typed. ``text`` for typed input, ``transcript`` for transcribed audio."""

    item_id: str
    text: str | None = None
    transcript: str | None = None
    has_audio: bool = False


@dataclass(frozen=True, slots=True)
class AssistantMessageItem:
    """An assistant turn: ``text`` for text output, ``transcript`` for audio output."""

    item_id: str
    text: str | None = None
    transcript: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    has_audio: bool = False


@dataclass(frozen=True, slots=True)
class SystemMessageItem:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCallItem:
    """A tool call by the model."""

    item_id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


@dataclass(frozen=True, slots=True)
class FunctionCallOutputItem:
    """The answer to a tool call."""

    item_id: str
    call_id: str
    output: str


HistoryItem: TypeAlias = (
    UserMessageItem | AssistantMessageItem | SystemMessageItem | FunctionCallItem | FunctionCallOutputItem
)


ItemStatus: TypeAlias = Literal["in_progress", "completed", "incomplete"]


def _status(value: object) -> ItemStatus:
    if value == "in_progress":
        return "in_progress"
    if value == "incomplete":
        return "incomplete"
    return "completed"


def _join_content(content: list[dict[str, Any]], kinds: tuple[str, ...], key: str) -> str | None:
    parts = [c.get(key) for c in content if c.get("type") in kinds and isinstance(c.get(key), str)]
    return "".join(p for p in parts if p is not None) if parts else None


def history_item_from_server(item: dict[str, Any]) -> HistoryItem | None:
    """Convert a GA (or beta) server conversation item dict into a history item; ``None`` if not a kind we
    keep (e.g. MCP items)."""
    item_id = str(item.get("id") or "")
    kind = item.get("type")
    if kind == "message":
        content = item.get("content") or []
        role = item.get("role")
        if role == "user":
            return UserMessageItem(
                item_id=item_id,
                text=_join_content(content, ("input_text", "text"), "text"),
                transcript=_join_content(content, ("input_audio", "audio"), "transcript"),
                has_audio=any(c.get("type") in ("input_audio", "audio") for c in content),
            )
        if role == "assistant":
            return AssistantMessageItem(
                item_id=item_id,
                text=_join_content(content, ("output_text", "text"), "text"),
                transcript=_join_content(content, ("output_audio", "audio"), "transcript"),
                status=_status(item.get("status")),
                has_audio=any(c.get("type") in ("output_audio", "audio") for c in content),
            )
        if role == "system":
            return SystemMessageItem(
                item_id=item_id, text=_join_content(content, ("input_text", "text"), "text") or ""
            )
        return None
    if kind == "function_call":
        return FunctionCallItem(
            item_id=item_id,
            call_id=str(item.get("call_id") or ""),
            name=str(item.get("name") or ""),
            arguments=str(item.get("arguments") or ""),
            status=_status(item.get("status")),
        )
    if kind == "function_call_output":
        return FunctionCallOutputItem(
            item_id=item_id, call_id=str(item.get("call_id") or ""), output=str(item.get("output") or "")
        )
    return None
