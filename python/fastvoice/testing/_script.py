"""Scripted responses for :class:`~fastvoice.testing.FakeRealtimeServer`: what the "model" says, and the GA
event sequence that says it (built as plain dicts; the server validates and paces them)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IdGen", "ScriptedResponse", "ScriptedToolCall", "Step", "response_done", "response_events"]


class IdGen:
    """Deterministic ids (``item_1``, ``resp_1``, ``call_1``, ``event_1``...) so tests can predict them."""

    def __init__(self) -> None:
        self._counters: dict[str, Iterator[int]] = {}

    def __call__(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}_{next(counter)}"


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A function call the scripted model makes; ``arguments`` may be a dict (JSON-encoded) or raw text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One model response.

    ``audio``: PCM chunks, one ``response.output_audio.delta`` each. ``transcript``: the audio transcript,
    either one string (sent as a single delta) or a list of deltas (interleaved with the audio deltas).
    ``text``: a text-only response instead of audio. ``tool_calls``: function calls after the message.
    ``delta_interval_s`` pauses between audio deltas; ``realtime=True`` instead paces each delta by its own
    duration (24 kHz PCM16), as a real server streaming at playback speed would.
    """

    audio: Sequence[bytes] = ()
    transcript: str | Sequence[str] | None = None
    text: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    delta_interval_s: float = 0.0
    realtime: bool = False

    def transcript_deltas(self) -> list[str]:
        if self.transcript is None:
            return []
        return [self.transcript] if isinstance(self.transcript, str) else list(self.transcript)

    @property
    def has_message(self) -> bool:
        return bool(self.audio) or self.transcript is not None or self.text is not None


@dataclass(slots=True)
class Step:
    """One event to send, and how long to wait before sending it."""

    event: dict[str, Any]
    delay_s: float = 0.0
    audio_bytes: int = 0
    """Raw audio bytes this event carries (so the server can track what was sent per item)."""


def _usage() -> dict[str, Any]:
    return {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0}


def _finish_item(
    steps: list[Step], outputs: list[dict[str, Any]], rid: str, out_index: int, done_item: dict[str, Any]
) -> None:
    """The two events that close an output item, and the item recorded in the response's output."""
    steps.append(
        Step(
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": out_index,
                "item": done_item,
            }
        )
    )
    steps.append(Step({"type": "conversation.item.done", "item": done_item}))
    outputs.append(done_item)


def response_events(
    script: ScriptedResponse, ids: IdGen, conversation_id: str, previous_item_id: str | None
) -> tuple[str, list[Step], list[dict[str, Any]]]:
    """The event sequence for ``script``, minus the final ``response.done`` (the server sends that, because a
    cancellation changes it). Returns ``(response_id, steps, output_items)``."""
    rid = ids("resp")
    modality = "text" if script.text is not None else "audio"
    created = {
        "type": "response.created",
        "response": {
            "id": rid,
            "object": "realtime.response",
            "status": "in_progress",
            "output": [],
            "output_modalities": [modality],
            "conversation_id": conversation_id,
        },
    }
    steps = [Step(created)]
    outputs: list[dict[str, Any]] = []
    out_index = 0
    prev = previous_item_id
    if script.has_message:
        iid = ids("item")
        item: dict[str, Any] = {
            "id": iid,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        base = {"response_id": rid, "item_id": iid, "output_index": out_index, "content_index": 0}
        steps.append(
            Step(
                {
                    "type": "response.output_item.added",
                    "response_id": rid,
                    "output_index": out_index,
                    "item": dict(item),
                }
            )
        )
        steps.append(Step({"type": "conversation.item.added", "previous_item_id": prev, "item": dict(item)}))
        if script.text is not None:
            steps.append(
                Step({"type": "response.content_part.added", **base, "part": {"type": "text", "text": ""}})
            )
            steps.append(Step({"type": "response.output_text.delta", **base, "delta": script.text}))
            steps.append(Step({"type": "response.output_text.done", **base, "text": script.text}))
            part = {"type": "text", "text": script.text}
            content = {"type": "output_text", "text": script.text}
        else:
            steps.append(
                Step(
                    {
                        "type": "response.content_part.added",
                        **base,
                        "part": {"type": "audio", "transcript": ""},
                    }
                )
            )
            deltas = script.transcript_deltas()
            for i in range(max(len(script.audio), len(deltas))):
                if i < len(script.audio):
                    chunk = script.audio[i]
                    if script.realtime:
                        delay = len(chunk) / 48000.0
                    else:
                        delay = script.delta_interval_s if i > 0 else 0.0
                    wire = {
                        "type": "response.output_audio.delta",
                        **base,
                        "delta": base64.b64encode(chunk).decode(),
                    }
                    steps.append(Step(wire, delay, len(chunk)))
                if i < len(deltas):
                    steps.append(
                        Step({"type": "response.output_audio_transcript.delta", **base, "delta": deltas[i]})
                    )
            full = "".join(deltas)
            steps.append(Step({"type": "response.output_audio.done", **base}))
            steps.append(Step({"type": "response.output_audio_transcript.done", **base, "transcript": full}))
            part = {"type": "audio", "transcript": full}
            content = {"type": "output_audio", "transcript": full}
        steps.append(Step({"type": "response.content_part.done", **base, "part": part}))
        _finish_item(steps, outputs, rid, out_index, {**item, "status": "completed", "content": [content]})
        prev = iid
        out_index += 1
    for call in script.tool_calls:
        iid = ids("item")
        call_id = call.call_id or ids("call")
        args = call.arguments_json()
        item = {
            "id": iid,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        common = {"response_id": rid, "item_id": iid, "output_index": out_index, "call_id": call_id}
        steps.append(
            Step(
                {
                    "type": "response.output_item.added",
                    "response_id": rid,
                    "output_index": out_index,
                    "item": dict(item),
                }
            )
        )
        steps.append(Step({"type": "conversation.item.added", "previous_item_id": prev, "item": dict(item)}))
        steps.append(Step({"type": "response.function_call_arguments.delta", **common, "delta": args}))
        steps.append(
            Step(
                {
                    "type": "response.function_call_arguments.done",
                    **common,
                    "name": call.name,
                    "arguments": args,
                }
            )
        )
        _finish_item(steps, outputs, rid, out_index, {**item, "status": "completed", "arguments": args})
        prev = iid
        out_index += 1
    return rid, steps, outputs


def response_done(
    rid: str,
    outputs: list[dict[str, Any]],
    modality: str,
    status: str = "completed",
    reason: str | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": rid,
        "object": "realtime.response",
        "status": status,
        "output": outputs,
        "output_modalities": [modality],
        "usage": _usage(),
    }
    if status != "completed":
        response["status_details"] = {"type": status, "reason": reason}
    return {"type": "response.done", "response": response}
