"""One served connection: the Realtime session state machine.

Client events are handled one at a time, in arrival order, by the connection's reader; a response runs as its
own task so that audio appends, barge-in and ``response.cancel`` keep flowing while it plays. All sends go
through :meth:`Session.emit`, which validates the event as a GA ``RealtimeServerEvent`` (when the server is
strict) and serialises writes. Nothing here is shared with other sessions except the engines, so a session
that misbehaves (or whose brain raises) only ever hurts itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from fastvoice.audio import AudioFormatError
from fastvoice.serve.audio import InputDecoder, format_of, rate_of, wire_bytes_per_ms
from fastvoice.serve.brain import Brain
from fastvoice.serve.checks import check_response_params, check_session_update
from fastvoice.serve.engines import Engines, Utterance
from fastvoice.serve.events import (
    ClientEventError,
    check_client_event,
    error_event,
    new_id,
    parse_client_json,
)
from fastvoice.serve.response import Responder
from fastvoice.serve.turns import TurnTranscripts
from fastvoice.testing._state import default_session, merge
from fastvoice.testing.validation import validate_server_event
from fastvoice.voice._vad import TurnDetector, make_turn_detector
from fastvoice.voice.config import TurnDetection

__all__ = ["Session", "SessionOptions"]

logger = logging.getLogger("fastvoice.serve")

MIN_COMMIT_MS = 100.0
MAX_BUFFER_S = 900  # 15 minutes: a client that never commits cannot grow a session without bound


class SessionOptions:
    """Server-wide settings every session reads."""

    def __init__(
        self,
        *,
        pace: float,
        strict: bool,
        chunk_ms: int,
        on_error: Callable[[BaseException], None],
        idle_timeout: float | None = None,
    ):
        self.pace, self.strict, self.chunk_ms, self.on_error = pace, strict, chunk_ms, on_error
        self.idle_timeout = idle_timeout


#: Semantic VAD's ``eagerness`` as end-of-turn silence: how long a pause must last before the turn is over.
EAGERNESS_SILENCE_MS = {"low": 900, "medium": 500, "auto": 500, "high": 250}


def vad_settings(td: Mapping[str, Any], engine: str = "energy") -> TurnDetection:
    """The session's turn detection settings for the VAD ``engine`` ("auto": Silero when installed, or
    "energy"). ``server_vad``: ``threshold`` is the speech probability (0..1: Silero's own scale; the energy
    detector maps it linearly onto -60..-20 dBFS, so 0.5 is -40 dBFS),
    ``silence_duration_ms`` ends a turn, ``prefix_padding_ms`` is kept before it. ``semantic_vad``: its
    ``eagerness`` picks the end-of-turn silence (:data:`EAGERNESS_SILENCE_MS`); the rest are defaults."""
    if td.get("type") == "semantic_vad":
        eagerness = str(td.get("eagerness") or "auto")
        threshold, silence, prefix = 0.5, EAGERNESS_SILENCE_MS.get(eagerness, 500), 300
    else:
        threshold = float(td.get("threshold", 0.5) or 0.5)
        silence = int(td.get("silence_duration_ms", 500) or 500)
        prefix = int(td.get("prefix_padding_ms", 300) or 0)
    threshold = min(1.0, max(0.0, threshold))
    return TurnDetection(
        engine="auto" if engine == "auto" else "energy",
        threshold=threshold,
        threshold_db=-60.0 + 40.0 * threshold,
        min_speech_ms=100,
        silence_ms=max(20, silence),
        prefix_ms=max(0, prefix),
        frame_ms=20,
    )


class Session:
    """State of one connection; :meth:`run` serves it until the client goes away."""

    responds = True  # server VAD turns get a response (create_response); a transcription session's never

    def __init__(
        self, ws: web.WebSocketResponse, engines: Engines, brain: Brain, model: str, options: SessionOptions
    ) -> None:
        self.ws = ws
        self.engines = engines
        self.brain = brain
        self.options = options
        self.session = default_session(model)
        self.items: list[dict[str, Any]] = []
        self.conversation_id = new_id("conv")
        self.any_audio = False
        self._lock = asyncio.Lock()
        self._buffer = bytearray()  # PCM16 at the input format's rate, since the last commit/clear
        self._stream_samples = 0  # all input samples ever appended, for audio_*_ms
        self._detector: TurnDetector | None = None
        self._vad = TurnDetection()
        self._speech_item: str | None = None
        self._speech_start_ms = 0
        self._decoder = InputDecoder("audio/pcm")
        self.transcripts = TurnTranscripts(self)
        self._utt: Utterance | None = None  # the turn being transcribed as it streams in
        self.responder = Responder(self)
        self._internal_errors = 0
        self._last_heard = asyncio.get_running_loop().time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_closing: asyncio.Task[None] | None = None
        self._configure_input()

    # ---- plumbing
    # ------------------------------------------------------------------------------------------------

    async def emit(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", new_id("event"))
        if self.options.strict:
            self.check_sent(event)
        text = json.dumps(event)
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_str(text)

    def check_sent(self, event: dict[str, Any]) -> None:
        validate_server_event(event)

    def check_event(self, data: Any) -> dict[str, Any]:
        """``data`` as a client event this session takes, else :class:`ClientEventError`."""
        return check_client_event(data)

    async def reject(self, exc: ClientEventError) -> None:
        await self.emit(error_event(exc))

    def item(self, item_id: str) -> dict[str, Any] | None:
        for item in self.items:
            if item.get("id") == item_id:
                return item
        return None

    async def add_item(self, item: dict[str, Any], after: str | None = None, *, done: bool = True) -> None:
        """Insert ``item`` after ``after`` (None: at the end, "root": first) and announce it."""
        if after == "root":
            index = 0
        elif after is None:
            index = len(self.items)
        else:
            found = [i for i, it in enumerate(self.items) if it.get("id") == after]
            if not found:
                raise ClientEventError(
                    "item_not_found", f"Previous item {after} not found", "previous_item_id"
                )
            index = found[0] + 1
        prev = self.items[index - 1]["id"] if index > 0 else None
        self.items.insert(index, item)
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": prev, "item": copy.deepcopy(item)}
        )
        if done:
            await self.emit(
                {"type": "conversation.item.done", "previous_item_id": prev, "item": copy.deepcopy(item)}
            )

    # ---- lifecycle
    # -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        from aiohttp import WSMsgType

        try:
            await self.emit({"type": "session.created", "session": copy.deepcopy(self.session)})
            while True:
                msg = await self._receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type == WSMsgType.TEXT:
                    await self.on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self.reject(
                        ClientEventError("invalid_value", "Binary frames are not supported; send JSON text.")
                    )
                elif msg.type == WSMsgType.ERROR:  # frame too big, bad UTF-8...: aiohttp closed already
                    logger.info("session closed on a WebSocket protocol error: %s", msg.data)
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await self.close()

    async def _receive(self) -> Any:
        """The next frame. Only frames the client sends count as activity for the idle timeout (pings
        do not); the idle watchdog closes the socket rather than cancelling this read, so no frame is lost."""
        if self.options.idle_timeout is not None and self._idle_timer is None:
            self._arm_idle(self.options.idle_timeout)
        msg = await self.ws.receive()
        self._last_heard = asyncio.get_running_loop().time()
        return msg

    def _arm_idle(self, delay: float) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        idle = self.options.idle_timeout
        if idle is None or self.ws.closed:
            return
        loop = asyncio.get_running_loop()
        remaining = self._last_heard + idle - loop.time()
        if remaining <= 0 and (self.responder.is_active() or self.transcripts):
            self._last_heard, remaining = loop.time(), idle  # the server is still talking: not idle
        if remaining > 0:
            self._arm_idle(remaining)
            return
        self._idle_closing = loop.create_task(self._close_idle(idle))

    async def _close_idle(self, idle: float) -> None:
        logger.info("closing a session idle for %gs", idle)
        exc = ClientEventError(
            "idle_timeout", f"The session was closed after {idle:g} seconds without a client event."
        )
        try:
            async with asyncio.timeout(5):  # a peer that stopped reading must not hold the session open
                await self.reject(exc)
                await self.ws.close(code=1000, message=b"idle timeout")
        except (ConnectionResetError, RuntimeError, TimeoutError):
            await self.ws.close(code=1000, message=b"idle timeout", drain=False)

    async def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._idle_closing is not None and self._idle_closing is not asyncio.current_task():
            await asyncio.gather(self._idle_closing, return_exceptions=True)
        await self._drop_utterance()
        await self.responder.cancel(None, notify=False)
        await self.transcripts.cancel()

    async def on_text(self, raw: str) -> None:
        data: Any = None
        try:
            data = parse_client_json(raw)
            event = self.check_event(data)
            handler = getattr(self, "_on_" + event["type"].replace(".", "_"))
            await handler(event)
        except ClientEventError as exc:
            if exc.event_id is None and isinstance(data, dict):
                exc.set_event_id(data.get("event_id"))
            await self.reject(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # our bug: report it to this client and keep the session (and others) alive
            self._internal_errors += 1
            if self._internal_errors == 1:
                logger.exception("error handling a client event")
            else:  # one traceback per session is enough; a client repeating the frame must not flood the log
                logger.error("error handling a client event (%d so far): %r", self._internal_errors, exc)
            self.options.on_error(exc)
            if not self.ws.closed:
                error = {"type": "server_error", "code": "internal_error", "message": str(exc)[:500]}
                await self.ws.send_str(
                    json.dumps({"type": "error", "event_id": new_id("event"), "error": error})
                )

    # ---- session
    # -------------------------------------------------------------------------------------------------

    async def _drop_utterance(self) -> None:
        utt, self._utt = self._utt, None
        if utt is not None:
            await utt.abort()

    def _configure_input(self) -> None:
        kind = format_of(self.session, "input")
        if kind != self._decoder.kind:
            self._decoder = InputDecoder(kind)
            self._buffer.clear()
        td = ((self.session.get("audio") or {}).get("input") or {}).get("turn_detection")
        if td and td.get("type") in ("server_vad", "semantic_vad"):
            self._vad = vad_settings(td, self.engines.turn_detector)
            self._detector = make_turn_detector(self._decoder.rate, self._vad)
        else:
            self._detector = None
        self._speech_item = None

    @property
    def turn_detection(self) -> Mapping[str, Any] | None:
        td = ((self.session.get("audio") or {}).get("input") or {}).get("turn_detection")
        return td if isinstance(td, Mapping) else None

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        update = event["session"]
        eid = event.get("event_id")
        if update.get("type") == "transcription":  # the schema allows only "realtime" and "transcription"
            from fastvoice.serve.transcribe import become_transcription  # it builds on this module

            await become_transcription(self, event)
            return
        # A "model" in the update is accepted (and echoed) as is: offline, every model is the same engines,
        # and clients that name their model in session.update instead of the URL must work unchanged.
        voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if voice is not None and self.any_audio and voice != self.session["audio"]["output"]["voice"]:
            msg = "Cannot update a conversation's voice if assistant audio is present."
            raise ClientEventError("cannot_update_voice", msg, "session.audio.output.voice", eid)
        check_session_update(update, eid)  # ranges the types do not encode, refused before anything changes
        merge(self.session, update)
        await self._drop_utterance()
        self._configure_input()
        await self.emit({"type": "session.updated", "session": copy.deepcopy(self.session)})

    # ---- input audio
    # ---------------------------------------------------------------------------------------------

    def _ms(self, samples: int) -> int:
        return int(samples * 1000 // self._decoder.rate)

    async def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        eid = event.get("event_id")
        try:
            wire = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio", eid
            ) from None
        try:
            pcm = self._decoder.decode(wire)
        except AudioFormatError as exc:
            raise ClientEventError("invalid_value", f"Invalid 'audio': {exc}.", "audio", eid) from None
        self._stream_samples += len(pcm) // 2
        if len(self._buffer) + len(pcm) > MAX_BUFFER_S * self._decoder.rate * 2:
            msg = f"The input audio buffer is full ({MAX_BUFFER_S} s); commit or clear it."
            raise ClientEventError("input_audio_buffer_full", msg, "audio", eid)
        self._buffer += pcm
        detector = self._detector
        if detector is None:
            return
        was_in_turn = detector.in_turn
        if was_in_turn and self._utt is not None:
            self._utt.feed(pcm)
        turns = detector.push(pcm)
        now_ms = self._ms(self._stream_samples)
        td = self.turn_detection or {}
        for turn in turns:
            if not was_in_turn:
                await self._speech_started(now_ms, td)
            was_in_turn = False
            end_ms = max(self._speech_start_ms, now_ms - self._vad.silence_ms)
            await self._speech_stopped(end_ms)
            await self._commit(turn, auto=True)
        if detector.in_turn and not was_in_turn:
            await self._speech_started(now_ms, td)
        if not detector.in_turn:
            # Idle under VAD: keep only the pre-roll a streamed transcription starts from.
            pre_s = 0.1 + self._vad.prefix_ms / 1000
            keep = int(self._decoder.rate * pre_s) * 2
            del self._buffer[: max(0, len(self._buffer) - keep)]

    async def _speech_started(self, now_ms: int, td: Mapping[str, Any]) -> None:
        self._speech_item = new_id("item")
        pre = 100 + self._vad.prefix_ms
        self._speech_start_ms = max(0, now_ms - pre)
        await self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": self._speech_start_ms,
                "item_id": self._speech_item,
            }
        )
        await self._drop_utterance()
        self._utt = self.engines.open_utterance(self._decoder.rate, self._partial_sender(self._speech_item))
        if self._utt is not None:
            self._utt.feed(bytes(self._buffer))  # pre-roll and the chunk that started the turn
        if td.get("interrupt_response", True):
            await self.responder.cancel("turn_detected")

    def _partial_sender(self, item_id: str) -> Callable[[str], Awaitable[None]] | None:
        """What a streamed transcription calls with each newly recognised piece of the turn ``item_id``
        (None when the session does not ask for transcripts)."""
        if not ((self.session.get("audio") or {}).get("input") or {}).get("transcription"):
            return None

        async def send(delta: str) -> None:
            await self.emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )

        return send

    async def _speech_stopped(self, end_ms: int) -> None:
        item_id = self._speech_item or new_id("item")
        self._speech_item = item_id
        await self.emit(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item_id}
        )

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        await self._drop_utterance()
        if self._detector is not None:
            self._detector.flush()
        self._speech_item = None
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        pcm = bytes(self._buffer)
        if self._detector is not None and self._detector.in_turn:
            pcm = self._detector.flush() or pcm
        ms = len(pcm) / 2 * 1000 / self._decoder.rate
        if ms < MIN_COMMIT_MS:
            msg = (
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:g}ms of audio, but buffer only has {ms:.2f}ms of audio."
            )
            raise ClientEventError("input_audio_buffer_commit_empty", msg, None, event.get("event_id"))
        await self._commit(pcm, auto=False)

    async def _commit(self, pcm: bytes, *, auto: bool) -> None:
        self._buffer.clear()
        utt, self._utt = self._utt, None
        item_id = self._speech_item or new_id("item")
        self._speech_item = None
        prev = self.items[-1]["id"] if self.items else None
        await self.emit(
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev}
        )
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self.add_item(item)
        self.responder.input_audio_ms += len(pcm) / 2 * 1000 / self._decoder.rate
        self.transcripts.start(item, pcm, self._decoder.rate, utt)
        td = self.turn_detection if self.responds else None
        # A reply still playing (interrupt_response off) keeps the floor: this turn is answered by the next
        # response.create instead of an error the client never asked for.
        if auto and td is not None and td.get("create_response", True) and not self.responder.is_active():
            await self.responder.start(None, None)

    # ---- conversation
    # --------------------------------------------------------------------------------------------

    async def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = copy.deepcopy(event["item"])
        item.setdefault("id", new_id("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        if self.item(item["id"]) is not None:
            raise ClientEventError(
                "duplicate_item_id", f"Item {item['id']} already exists", "item.id", event.get("event_id")
            )
        try:
            await self.add_item(item, event.get("previous_item_id"))
        except ClientEventError as exc:
            exc.event_id = event.get("event_id")
            raise

    async def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self._existing(event)
        out = copy.deepcopy(item)
        audio = self.responder.audio_of(item["id"])
        if audio is not None:
            for part in out.get("content", []):
                if part.get("type") == "output_audio":
                    part["audio"] = base64.b64encode(audio).decode()
        await self.emit({"type": "conversation.item.retrieved", "item": out})

    async def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item = self._existing(event)
        self.items.remove(item)
        await self.emit({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self._existing(event)
        eid = event.get("event_id")
        if item.get("role") != "assistant":
            raise ClientEventError(
                "invalid_value", "Only assistant messages can be truncated.", "item_id", eid
            )
        await self.responder.truncate(item, int(event["content_index"]), int(event["audio_end_ms"]), eid)

    def _existing(self, event: dict[str, Any]) -> dict[str, Any]:
        item = self.item(event["item_id"])
        if item is None:
            raise ClientEventError(
                "item_not_found",
                f"Item with id '{event['item_id']}' not found.",
                "item_id",
                event.get("event_id"),
            )
        return item

    # ---- responses
    # -----------------------------------------------------------------------------------------------

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        check_response_params(event.get("response"), event.get("event_id"))
        await self.responder.start(event.get("response"), event.get("event_id"))

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        if not self.responder.is_active(event.get("response_id")):
            raise ClientEventError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
                event.get("event_id"),
            )
        await self.responder.cancel("client_cancelled")

    async def _on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        raise ClientEventError(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC connections.",
            "type",
            event.get("event_id"),
        )

    def output_bytes_per_ms(self) -> float:
        return wire_bytes_per_ms(format_of(self.session, "output"))

    def output_rate(self) -> int:
        return rate_of(format_of(self.session, "output"))
