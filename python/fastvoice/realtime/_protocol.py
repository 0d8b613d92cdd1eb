"""Builders of Realtime GA client events (plain dicts, ready for ``json.dumps``).

Every builder returns a dict that validates as ``openai.types.realtime.RealtimeClientEvent`` (the tests check
each one). Keeping them as small pure functions lets the session, the tests and the fake server share one
definition of the wire format; nothing here touches the network.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from fastvoice.realtime.agent import Agent
from fastvoice.realtime.config import DEFAULT_MODEL, RunConfig, SessionModelSettings
from fastvoice.realtime.events import (
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    HistoryItem,
    SystemMessageItem,
    UserMessageItem,
)

__all__ = [
    "BETA_SERVER_EVENT_ALIASES",
    "build_agent_update",
    "build_session_config",
    "build_session_update",
    "canonical_server_event_type",
    "conversation_item_create",
    "conversation_item_delete",
    "conversation_item_retrieve",
    "conversation_item_truncate",
    "function_call_output",
    "history_replay_events",
    "input_audio_buffer_append",
    "input_audio_buffer_clear",
    "input_audio_buffer_commit",
    "resolve_model",
    "response_cancel",
    "response_create",
    "session_update",
    "user_message",
]

BETA_SERVER_EVENT_ALIASES: dict[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}
"""Beta server event names and their GA equivalents (payloads are the same shape)."""


def canonical_server_event_type(event_type: str) -> str:
    """The GA name of a server event type (beta names are mapped, GA names returned unchanged)."""
    return BETA_SERVER_EVENT_ALIASES.get(event_type, event_type)


def _with_id(event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    if event_id is not None:
        event["event_id"] = event_id
    return event


def resolve_model(agent: Agent, config: RunConfig | None) -> str:
    """Agent's model, else the settings' model, else :data:`~fastvoice.realtime.config.DEFAULT_MODEL`."""
    settings = config.model_settings if config is not None else None
    return agent.model or (settings.model if settings is not None else None) or DEFAULT_MODEL


def _audio_config(s: SessionModelSettings) -> dict[str, Any]:
    audio_in: dict[str, Any] = {"format": s.input_format.to_wire()}
    if s.input_audio_noise_reduction is not None:
        audio_in["noise_reduction"] = {"type": s.input_audio_noise_reduction}
    if s.input_audio_transcription is not None:
        audio_in["transcription"] = s.input_audio_transcription.to_wire()
    # None is meaningful here: it switches server VAD off.
    audio_in["turn_detection"] = s.turn_detection.to_wire() if s.turn_detection is not None else None
    audio_out: dict[str, Any] = {"format": s.output_format.to_wire(), "voice": s.voice}
    if s.speed is not None:
        audio_out["speed"] = s.speed
    return {"input": audio_in, "output": audio_out}


def build_session_config(
    agent: Agent, config: RunConfig | None = None, *, include_tracing: bool = True, model: str | None = None
) -> dict[str, Any]:
    """The GA ``session`` object for ``agent`` under ``config`` (type ``realtime``)."""
    config = config if config is not None else RunConfig()
    s = config.model_settings
    session: dict[str, Any] = {
        "type": "realtime",
        "model": model or resolve_model(agent, config),
        "instructions": agent.get_instructions(),
        "output_modalities": list(s.effective_output_modalities),
        "audio": _audio_config(s),
        "tools": agent.session_tools(),
    }
    choice = s.tool_choice_wire()
    if isinstance(choice, dict) and not any(t["name"] == choice["name"] for t in session["tools"]):
        raise ValueError(f"tool_choice names {choice['name']!r}, which agent {agent.name!r} does not have")
    if choice is not None:
        session["tool_choice"] = choice
    if s.max_output_tokens is not None:
        session["max_output_tokens"] = s.max_output_tokens
    if s.prompt is not None:
        session["prompt"] = s.prompt.to_wire()
    if include_tracing and config.tracing is not None:
        session["tracing"] = "auto" if config.tracing == "auto" else config.tracing.to_wire()
    return session


def session_update(session: Mapping[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """A ``session.update`` carrying ``session`` (which must include ``"type": "realtime"``)."""
    return _with_id({"type": "session.update", "session": dict(session)}, event_id)


def build_session_update(
    agent: Agent, config: RunConfig | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """The first frame of a session: the full GA ``session.update`` (instructions, audio, voice, tools +
    handoff tools, tool choice, tracing)."""
    return session_update(build_session_config(agent, config), event_id)


def build_agent_update(
    agent: Agent, config: RunConfig | None = None, *, model: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """The ``session.update`` sent on a handoff: the new agent's instructions and tools, with voice and
    formats from the same ``config`` (so unchanged). Tracing is left out (the server refuses to change it once
    set); pass the session's ``model`` because the model cannot change mid-session either."""
    return session_update(build_session_config(agent, config, include_tracing=False, model=model), event_id)


def input_audio_buffer_append(
    audio: bytes | bytearray | memoryview | str, event_id: str | None = None
) -> dict[str, Any]:
    """Append audio to the input buffer; bytes are base64-encoded, a ``str`` is taken as base64 already."""
    if isinstance(audio, str):
        encoded = audio
    elif isinstance(audio, bytes | bytearray | memoryview):
        encoded = base64.b64encode(audio).decode("ascii")
    else:
        raise TypeError(f"audio must be bytes-like or a base64 str, got {type(audio).__name__}")
    return _with_id({"type": "input_audio_buffer.append", "audio": encoded}, event_id)


def input_audio_buffer_commit(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "input_audio_buffer.commit"}, event_id)


def input_audio_buffer_clear(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "input_audio_buffer.clear"}, event_id)


def conversation_item_create(
    item: Mapping[str, Any], previous_item_id: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "conversation.item.create", "item": dict(item)}
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    return _with_id(event, event_id)


def user_message(text: str, event_id: str | None = None) -> dict[str, Any]:
    """A typed user message (``conversation.item.create`` with one ``input_text`` part)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return conversation_item_create(item, event_id=event_id)


def function_call_output(call_id: str, output: str, event_id: str | None = None) -> dict[str, Any]:
    """The answer to a tool call (``conversation.item.create`` of a ``function_call_output`` item)."""
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("call_id must be a non-empty str")
    if not isinstance(output, str):
        raise TypeError(f"tool output must be a str, got {type(output).__name__}")
    return conversation_item_create(
        {"type": "function_call_output", "call_id": call_id, "output": output}, event_id=event_id
    )


def response_create(response: Mapping[str, Any] | None = None, event_id: str | None = None) -> dict[str, Any]:
    """Ask the model to respond; ``response`` optionally overrides per-response parameters."""
    event: dict[str, Any] = {"type": "response.create"}
    if response:
        event["response"] = dict(response)
    return _with_id(event, event_id)


def response_cancel(response_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id is not None:
        event["response_id"] = response_id
    return _with_id(event, event_id)


def conversation_item_truncate(
    item_id: str, content_index: int, audio_end_ms: int, event_id: str | None = None
) -> dict[str, Any]:
    """Tell the server the user only heard ``audio_end_ms`` of an assistant item (after an interruption)."""
    if not isinstance(item_id, str) or not item_id:
        raise ValueError("item_id must be a non-empty str")
    for name, v in (("content_index", content_index), ("audio_end_ms", audio_end_ms)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return _with_id(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        },
        event_id,
    )


def conversation_item_retrieve(item_id: str, event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "conversation.item.retrieve", "item_id": item_id}, event_id)


def conversation_item_delete(item_id: str, event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "conversation.item.delete", "item_id": item_id}, event_id)


def _replay_item(item: HistoryItem) -> dict[str, Any] | None:
    if isinstance(item, UserMessageItem):
        text = item.text if item.text is not None else item.transcript
        if not text:
            return None
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    if isinstance(item, AssistantMessageItem):
        text = item.text if item.text is not None else item.transcript
        if not text:
            return None
        return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
    if isinstance(item, SystemMessageItem):
        return {"type": "message", "role": "system", "content": [{"type": "input_text", "text": item.text}]}
    if isinstance(item, FunctionCallItem):
        return {
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    if isinstance(item, FunctionCallOutputItem):
        return {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
    return None


def history_replay_events(history: Iterable[HistoryItem]) -> list[dict[str, Any]]:
    """``conversation.item.create`` events that rebuild the text of ``history`` on a fresh connection (used
    after a reconnect). Audio is not replayed: user audio becomes its transcript, items without text are
    skipped."""
    events = []
    for item in history:
        wire = _replay_item(item)
        if wire is not None:
            events.append(conversation_item_create(wire))
    return events
