"""Responses of a served session: the brain's reply spoken (or written) as the GA event stream.

A response is one task. It announces itself, waits for the transcripts it needs, asks the brain, then streams:
the spoken reply sentence by sentence (transcript delta, then that sentence's TTS audio in fixed ``chunk_ms``
deltas, each sent no earlier than its playback time divided by ``pace``), then any function calls, then
``response.done`` with usage. Cancellation (``response.cancel``, or barge-in) stops the task between two
sends and closes the response as ``cancelled``; what was sent so far is what a later
``conversation.item.truncate`` can cut, and the transcript is cut with it (whole sentences by their audio
span, the sentence in progress by its share of words).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastvoice.serve.audio import OutputEncoder, format_of
from fastvoice.serve.brain import BrainReply, FunctionCall, TurnContext
from fastvoice.serve.events import ClientEventError, item_text_chars, new_id, response_shell, usage
from fastvoice.voice.text import split_sentences

if TYPE_CHECKING:
    from fastvoice.serve.session import Session

__all__ = ["Responder"]

logger = logging.getLogger("fastvoice.serve")


@dataclass(slots=True)
class ItemAudio:
    """The audio sent for one assistant item, in the wire format, and which bytes spoke which words."""

    bytes_per_ms: float
    audio: bytearray = field(default_factory=bytearray)
    marks: list[tuple[int, int, str]] = field(
        default_factory=list
    )  # (first byte, end byte, transcript delta)


@dataclass(slots=True)
class Active:
    response_id: str
    params: dict[str, Any]
    modalities: list[str]
    in_conversation: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    clock: float | None = None  # loop time of the first audio delta: the pacing origin
    sent_ms: float = 0.0
    text_chars: int = 0
    input_chars: int = 0


class Responder:
    """The response side of one :class:`~fastvoice.serve.session.Session`."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.active: Active | None = None
        self.input_audio_ms = 0.0  # user audio committed since the last response, for its usage
        self.started = 0  # responses ever started (a session with none may still become a transcription one)
        self._audio: dict[str, ItemAudio] = {}

    def is_active(self, response_id: str | None = None) -> bool:
        return self.active is not None and response_id in (None, self.active.response_id)

    def audio_of(self, item_id: str) -> bytes | None:
        record = self._audio.get(item_id)
        return bytes(record.audio) if record is not None else None

    # ---- start / cancel
    # ------------------------------------------------------------------------------------------

    async def start(self, params: dict[str, Any] | None, event_id: str | None) -> None:
        if self.active is not None:
            msg = f"Conversation already has an active response in progress: {self.active.response_id}"
            raise ClientEventError("conversation_already_has_active_response", msg, None, event_id)
        params = copy.deepcopy(params or {})
        modalities = list(
            params.get("output_modalities") or self.s.session.get("output_modalities") or ["audio"]
        )
        act = Active(new_id("resp"), params, modalities, params.get("conversation", "auto") != "none")
        self.active = act
        self.started += 1
        act.task = asyncio.get_running_loop().create_task(self._guarded(act))

    async def cancel(self, reason: str | None, *, notify: bool = True) -> None:
        act = self.active
        if act is None:
            return
        self.active = None
        if act.task is not None:
            act.task.cancel()
            await asyncio.gather(act.task, return_exceptions=True)
        if not notify or self.s.ws.closed:
            return
        for item in act.outputs:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        details = {"type": "cancelled", "reason": reason}
        await self.s.emit(self._done(act, "cancelled", details))

    def _done(self, act: Active, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        conv = self.s.conversation_id if act.in_conversation else None
        response = response_shell(act.response_id, status, act.modalities, conv, act.params.get("metadata"))
        response["output"] = copy.deepcopy(act.outputs)
        response["usage"] = usage(act.input_chars, self.input_audio_ms, act.text_chars, act.sent_ms)
        if details is not None:
            response["status_details"] = details
        self.input_audio_ms = 0.0
        return {"type": "response.done", "response": response}

    async def _guarded(self, act: Active) -> None:
        try:
            await self._run(act)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a brain or engine failure ends this response, never the session
            logger.exception("response %s failed", act.response_id)
            self.s.options.on_error(exc)
            if self.active is act:
                self.active = None
                error = {"type": "server_error", "code": type(exc).__name__}
                try:
                    await self.s.emit(self._done(act, "failed", {"type": "failed", "error": error}))
                except Exception:  # the socket is gone too
                    pass

    # ---- the response itself
    # -------------------------------------------------------------------------------------

    def _context_items(self, act: Active) -> list[dict[str, Any]]:
        given = act.params.get("input")
        if given is None:
            return copy.deepcopy(self.s.items)
        items = []
        for entry in given:
            if entry.get("type") == "item_reference":
                found = self.s.item(str(entry.get("id")))
                if found is not None:
                    items.append(copy.deepcopy(found))
            else:
                items.append(copy.deepcopy(entry))
        return items

    async def _run(self, act: Active) -> None:
        s = self.s
        conv = s.conversation_id if act.in_conversation else None
        shell = response_shell(
            act.response_id, "in_progress", act.modalities, conv, act.params.get("metadata")
        )
        await s.emit({"type": "response.created", "response": shell})
        await s.transcripts.wait()
        items = self._context_items(act)
        act.input_chars = item_text_chars(items) + len(str(s.session.get("instructions") or ""))
        reply = await s.brain.respond(TurnContext(items, copy.deepcopy(s.session), act.params))
        if not isinstance(reply, BrainReply):
            raise TypeError(f"brain.respond() must return a BrainReply, got {type(reply).__name__}")
        if reply.text:
            if "audio" in act.modalities:
                await self._speak(act, reply.text)
            else:
                await self._write(act, reply.text)
        for call in reply.calls:
            await self._call(act, call)
        if self.active is act:
            self.active = None
            await s.emit(self._done(act, "completed"))

    async def _open_item(self, act: Active, item: dict[str, Any]) -> int:
        index = len(act.outputs)
        act.outputs.append(item)
        await self.s.emit(
            {
                "type": "response.output_item.added",
                "response_id": act.response_id,
                "output_index": index,
                "item": copy.deepcopy(item),
            }
        )
        if act.in_conversation:
            await self.s.add_item(item, done=False)
        return index

    async def _close_item(self, act: Active, index: int, item: dict[str, Any]) -> None:
        item["status"] = "completed"
        await self.s.emit(
            {
                "type": "response.output_item.done",
                "response_id": act.response_id,
                "output_index": index,
                "item": copy.deepcopy(item),
            }
        )
        if act.in_conversation:
            await self.s.emit({"type": "conversation.item.done", "item": copy.deepcopy(item)})

    def _message(self) -> dict[str, Any]:
        return {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }

    async def _speak(self, act: Active, text: str) -> None:
        s = self.s
        item = self._message()
        index = await self._open_item(act, item)
        base = {
            "response_id": act.response_id,
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
        }
        await s.emit(
            {"type": "response.content_part.added", **base, "part": {"type": "audio", "transcript": ""}}
        )
        content = {"type": "output_audio", "transcript": ""}
        item["content"].append(content)
        kind = format_of(s.session, "output")
        encoder = OutputEncoder(kind)
        record = ItemAudio(s.output_bytes_per_ms())
        self._audio[item["id"]] = record
        s.any_audio = True
        chunk = max(2, int(record.bytes_per_ms * s.options.chunk_ms) // 2 * 2)
        out = s.session["audio"]["output"]
        voice, speed = str(out.get("voice") or "alloy"), out.get("speed")
        pending = bytearray()
        sentences = split_sentences(text) or [text]
        for k, sentence in enumerate(sentences):
            delta = sentence if k == 0 else " " + sentence
            content["transcript"] += delta
            act.text_chars += len(delta)
            await s.emit({"type": "response.output_audio_transcript.delta", **base, "delta": delta})
            first = len(record.audio) + len(pending)
            async for pcm in s.engines.speak(sentence, voice, speed):
                pending += encoder.process(pcm)
                while len(pending) >= chunk:
                    await self._send_audio(act, base, record, bytes(pending[:chunk]))
                    del pending[:chunk]
            if k == len(sentences) - 1:
                pending += encoder.flush()
            record.marks.append((first, len(record.audio) + len(pending), delta))
        if pending:
            await self._send_audio(act, base, record, bytes(pending))
        full = str(content["transcript"])
        await s.emit({"type": "response.output_audio.done", **base})
        await s.emit({"type": "response.output_audio_transcript.done", **base, "transcript": full})
        await s.emit(
            {"type": "response.content_part.done", **base, "part": {"type": "audio", "transcript": full}}
        )
        await self._close_item(act, index, item)

    async def _send_audio(self, act: Active, base: dict[str, Any], record: ItemAudio, chunk: bytes) -> None:
        loop = asyncio.get_running_loop()
        pace = self.s.options.pace
        if act.clock is None:
            act.clock = loop.time()
        elif pace > 0:
            delay = act.clock + act.sent_ms / 1000.0 / pace - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        record.audio += chunk
        act.sent_ms += len(chunk) / record.bytes_per_ms
        await self.s.emit(
            {"type": "response.output_audio.delta", **base, "delta": base64.b64encode(chunk).decode("ascii")}
        )

    async def _write(self, act: Active, text: str) -> None:
        s = self.s
        item = self._message()
        index = await self._open_item(act, item)
        base = {
            "response_id": act.response_id,
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
        }
        await s.emit({"type": "response.content_part.added", **base, "part": {"type": "text", "text": ""}})
        content = {"type": "output_text", "text": ""}
        item["content"].append(content)
        for k, sentence in enumerate(split_sentences(text) or [text]):
            delta = sentence if k == 0 else " " + sentence
            content["text"] += delta
            act.text_chars += len(delta)
            await s.emit({"type": "response.output_text.delta", **base, "delta": delta})
        full = str(content["text"])
        await s.emit({"type": "response.output_text.done", **base, "text": full})
        await s.emit({"type": "response.content_part.done", **base, "part": {"type": "text", "text": full}})
        await self._close_item(act, index, item)

    async def _call(self, act: Active, call: FunctionCall) -> None:
        args = call.arguments_json()
        call_id = new_id("call")
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        index = await self._open_item(act, item)
        common = {
            "response_id": act.response_id,
            "item_id": item["id"],
            "output_index": index,
            "call_id": call_id,
        }
        await self.s.emit({"type": "response.function_call_arguments.delta", **common, "delta": args})
        await self.s.emit(
            {"type": "response.function_call_arguments.done", **common, "name": call.name, "arguments": args}
        )
        item["arguments"] = args
        act.text_chars += len(args) + len(call.name)
        await self._close_item(act, index, item)

    # ---- truncation
    # ----------------------------------------------------------------------------------------------

    async def truncate(
        self, item: dict[str, Any], content_index: int, end_ms: int, event_id: str | None
    ) -> None:
        record = self._audio.get(item["id"])
        sent_ms = len(record.audio) / record.bytes_per_ms if record is not None else 0.0
        if record is None or end_ms < 0 or end_ms > sent_ms + 0.5:
            msg = f"Audio content of {sent_ms:.0f}ms is already shorter than {end_ms}ms"
            raise ClientEventError("invalid_value", msg, "audio_end_ms", event_id)
        width = 2 if record.bytes_per_ms > 20 else 1  # PCM16 vs G.711 bytes per sample
        keep = min(len(record.audio), int(end_ms * record.bytes_per_ms) // width * width)
        words: list[str] = []
        marks: list[tuple[int, int, str]] = []
        for first, end, delta in record.marks:
            if end <= keep:
                words.append(delta)
                marks.append((first, end, delta))
            elif first < keep:
                spoken = delta.split()
                n = int(len(spoken) * (keep - first) / max(1, end - first))
                if n:
                    part = (" " if delta.startswith(" ") else "") + " ".join(spoken[:n])
                    words.append(part)
                    marks.append((first, keep, part))
        del record.audio[keep:]
        record.marks = marks
        transcript = "".join(words)
        for part in item.get("content") or []:
            if part.get("type") == "output_audio":
                part["transcript"] = transcript
        await self.s.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": content_index,
                "audio_end_ms": end_ms,
            }
        )
