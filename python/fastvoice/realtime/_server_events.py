"""The server-event side of a session: response bookkeeping and one synchronous handler per event type.

Handlers run inside the reader's single pass over a batch: they append the events they produce to ``out`` and
queue the frames they want sent (flushed after the batch), and never await, so a batch of fifty audio deltas
costs fifty dictionary-free calls, not fifty scheduling rounds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastvoice import telemetry
from fastvoice._fastvoice import AudioFormatError
from fastvoice.realtime import _protocol as P
from fastvoice.realtime import events as ev
from fastvoice.realtime._inflight import ACK_EVENTS

if TYPE_CHECKING:
    import itertools

    from fastvoice.realtime._history import History
    from fastvoice.realtime._inflight import Unacked
    from fastvoice.realtime._playback import PlaybackTracker
    from fastvoice.realtime._tools_runner import GuardrailRunner, ToolRunner
    from fastvoice.realtime.agent import Agent
    from fastvoice.realtime.config import AudioFormatInfo

__all__ = ["ServerEvents"]

logger = logging.getLogger("fastvoice")

try:
    import orjson

    _loads: Callable[[str], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    import json

    _loads = json.loads


def _ignore(data: dict[str, Any], out: list[Any]) -> None:
    return None


def _item(data: dict[str, Any]) -> dict[str, Any]:
    item = data["item"]
    if not isinstance(item, dict):
        raise TypeError(f"'item' is {type(item).__name__}, not an object")
    return item


class ServerEvents:
    """Mixed into :class:`~fastvoice.realtime.session.Session`; the attributes below are the session's."""

    session_id: str
    agent: Agent
    state: ev.AgentState
    playback: PlaybackTracker
    tools: ToolRunner
    guardrails: GuardrailRunner
    _audio_rx: int
    _history: History
    _raw_events: bool
    _server_interrupts: bool
    _ready: asyncio.Future[None] | None
    _response_active: bool
    _create_sent: bool
    _create_pending: bool
    _resume_create: bool
    _unacked: Unacked
    _out_fmt: AudioFormatInfo
    _cancel_sent: bool
    _current_response: str | None
    _interrupted: set[str]
    _resp_seq: itertools.count[int]
    _handlers: dict[str, Callable[[dict[str, Any], list[Any]], None]]
    _closed: bool
    _meta: dict[str, Any]
    _idle_timer: asyncio.TimerHandle | None

    def queue_frame(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def deliver(self, events: list[Any]) -> None:
        raise NotImplementedError

    def _server_committed(self) -> None:
        """The server committed the input buffer on its own (server VAD): forget the pump's kept audio."""
        raise NotImplementedError

    # ---- response bookkeeping
    # -----------------------------------------------------------------------------------------

    def request_response(self) -> None:
        """Ask for a response: sent now if none is active or requested, else once the active one is done
        (any number of requests meanwhile become one)."""
        if self._response_active or self._create_sent:
            self._create_pending = True
            return
        self._create_sent = True
        self.queue_frame(P.response_create(event_id=f"fv_rc_{next(self._resp_seq)}"))

    def _cancel_response(self) -> None:
        if not self._cancel_sent:
            self._cancel_sent = True
            self.queue_frame(P.response_cancel())

    def _cut_playback(self, out: list[Any]) -> None:
        rid = self.playback.response_id or self._current_response
        cut = self.playback.cut()
        if rid is not None and (cut is not None or self._response_active):
            self._interrupted.add(rid)
        if cut is not None:
            item_id, content_index, end_ms = cut
            self.queue_frame(P.conversation_item_truncate(item_id, content_index, end_ms))
            out.append(
                ev.RealtimeAudioInterruptedEvent(
                    item_id=item_id, content_index=content_index, audio_end_ms=end_ms
                )
            )

    def set_state(self, state: ev.AgentState, out: list[Any] | None = None) -> None:
        if state == self.state:
            return
        self.state = state
        e = ev.RealtimeAgentStateEvent(state=state)
        if out is None:
            self.deliver([e])
        else:
            out.append(e)

    def _flush_history(self, out: list[Any]) -> None:
        if self._history.changed:
            out.append(ev.RealtimeHistoryUpdatedEvent(history=self._history.snapshot()))

    def _on_audio(
        self, audio: bytes, item_id: str, content_index: int, response_id: str | None, out: list[Any]
    ) -> None:
        n = len(audio)
        self._audio_rx += n
        # No dicts per chunk unless a handler listens.
        if telemetry._table.get(telemetry.REALTIME_AUDIO_RECEIVED):
            telemetry.execute(telemetry.REALTIME_AUDIO_RECEIVED, {"bytes": n}, self._meta)
        if response_id in self._interrupted:
            return
        if self.state != "speaking":
            self.set_state("speaking", out)
        self.playback.on_audio(item_id, content_index, response_id, audio)
        if self.playback.native:  # the transport wrote it into the ring: no per-chunk event
            return
        out.append(
            ev.RealtimeAudioEvent(
                audio=audio, item_id=item_id, content_index=content_index, response_id=response_id
            )
        )

    def _bad_event(
        self, kind: str | None, problem: str, out: list[Any], error: Exception | None = None
    ) -> None:
        """One error event (and one log line, no traceback) for a server event the session cannot use."""
        message = f"malformed {kind} event from the server: {problem}" if kind else problem
        logger.warning("fastvoice session %s: %s", self.session_id, message)
        out.append(ev.RealtimeErrorEvent(error=error or ev.ServerEventError(message, kind)))

    def _on_text(self, text: str, out: list[Any]) -> None:
        try:
            data = _loads(text)
        except ValueError as exc:
            self._bad_event(None, f"malformed JSON from the server: {str(exc)[:200]}", out)
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._bad_event(None, "a server event without a string 'type'", out)
            return
        kind = data["type"]
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("fastvoice session %s: recv %s", self.session_id, kind)
        if self._raw_events:
            out.append(ev.RealtimeRawModelEvent(data=data))
        if kind in ACK_EVENTS and self._unacked.ack(kind, data):
            self._server_committed()
        handler = self._handlers.get(kind)
        if handler is None:
            if not self._raw_events:
                out.append(ev.RealtimeRawModelEvent(data=data))
            return
        try:
            handler(data, out)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # A field missing, null or of the wrong type: report it, keep the session going.
            self._bad_event(kind, f"{type(exc).__name__}: {exc}", out)

    def _handler_table(self) -> dict[str, Callable[[dict[str, Any], list[Any]], None]]:
        table: dict[str, Callable[[dict[str, Any], list[Any]], None]] = {
            "session.created": _ignore,
            "session.updated": self._on_session_updated,
            "error": self._on_error,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "response.output_audio.delta": self._on_audio_json,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_transcript_delta,
            "response.output_audio_transcript.done": self._on_transcript_done,
            "response.output_text.delta": self._on_transcript_delta,
            "response.output_text.done": self._on_text_done,
            "response.output_item.added": _ignore,
            "response.output_item.done": self._on_output_item_done,
            "response.content_part.added": _ignore,
            "response.content_part.done": _ignore,
            "response.function_call_arguments.delta": _ignore,
            "response.function_call_arguments.done": _ignore,
            "conversation.item.added": self._on_item_added,
            "conversation.item.done": self._on_item_done,
            "conversation.item.retrieved": self._on_item_done,
            "conversation.item.deleted": self._on_item_deleted,
            "conversation.item.truncated": _ignore,
            "conversation.item.input_audio_transcription.delta": self._on_user_delta,
            "conversation.item.input_audio_transcription.completed": self._on_user_done,
            "conversation.item.input_audio_transcription.segment": _ignore,
            "conversation.item.input_audio_transcription.failed": self._on_transcription_failed,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_thinking,
            "input_audio_buffer.committed": self._on_thinking,
            "input_audio_buffer.cleared": _ignore,
            "input_audio_buffer.timeout_triggered": _ignore,
            "rate_limits.updated": _ignore,
        }
        for beta, ga in P.BETA_SERVER_EVENT_ALIASES.items():
            table[beta] = table[ga]
        return table

    # ---- server event handlers (synchronous: they append events to `out` and queue frames)

    def _on_session_updated(self, data: dict[str, Any], out: list[Any]) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _on_error(self, data: dict[str, Any], out: list[Any]) -> None:
        error = data.get("error") or {}
        ready = self._ready
        if ready is not None and not ready.done():
            message = error.get("message") if isinstance(error, dict) else error
            ready.set_exception(ValueError(f"the server refused the session configuration: {message}"))
        code = error.get("code") if isinstance(error, dict) else None
        event_id = error.get("event_id") if isinstance(error, dict) else None
        if isinstance(event_id, str) and event_id.startswith("fv_rc_"):
            self._create_sent = False
            if code == "conversation_already_has_active_response":
                self._create_pending = True
                return
        if code == "response_cancel_not_active":
            return  # the response ended while our cancel was on its way: nothing went wrong
        telemetry.execute(
            telemetry.REALTIME_SESSION_ERROR,
            {"monotonic_time": time.monotonic_ns()},
            {"session_id": self.session_id, "kind": "server", "code": code},
        )
        out.append(ev.RealtimeErrorEvent(error=error))

    def _on_response_created(self, data: dict[str, Any], out: list[Any]) -> None:
        rid = data["response"]["id"]
        if not isinstance(rid, str):
            raise TypeError(f"response.id must be a string, got {type(rid).__name__}")
        self._response_active = True
        self._create_sent = False
        self._cancel_sent = False
        self._current_response = rid
        self.set_state("thinking", out)
        out.append(ev.RealtimeAgentStartEvent(agent=self.agent))

    def _on_response_done(self, data: dict[str, Any], out: list[Any]) -> None:
        response = data.get("response")
        bad = (
            None if isinstance(response, dict) else f"'response' is {type(response).__name__}, not an object"
        )
        response = response if isinstance(response, dict) else {}
        output = response.get("output") or ()
        if not isinstance(output, list | tuple):
            bad, output = f"'response.output' is {type(output).__name__}, not a list", ()
        # The response is over either way: end it, so the session goes on (and report what was wrong).
        self._response_active = False
        self._cancel_sent = False
        rid = response.get("id")
        self._current_response = None
        self._interrupted.discard(rid)
        self._flush_history(out)
        out.append(ev.RealtimeAgentEndEvent(agent=self.agent))
        if bad is not None:
            self._bad_event("response.done", bad, out)
        for item in output:
            if isinstance(item, dict) and item.get("type") == "function_call":
                self.tools.on_function_call(item, out)
        if self._create_pending:
            self._create_pending = False
            self.request_response()
        if self._create_sent or self.tools.tasks:
            self.set_state("thinking", out)
        elif not self.playback.is_playing():
            self.set_state("idle", out)
        else:
            self._idle_later()

    def _idle_later(self) -> None:
        """The response is over but the listener is still hearing it: go idle once it has all been played."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        remaining = self.playback.received_ms - self.playback.played_ms
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(max(remaining, 20.0) / 1000, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._closed or self.state != "speaking" or self._response_active or self._create_sent:
            return
        if self.playback.is_playing():
            self._idle_later()  # a ring buffer being drained slower than real time
            return
        self.set_state("idle")

    def _on_audio_json(self, data: dict[str, Any], out: list[Any]) -> None:
        # Deltas the native parser did not take (malformed ones, an odd-length G.711 chunk) come here: decode
        # strictly, so a bad delta is an error event, never a few bytes of garbage audio.
        kind = data["type"]
        delta = data["delta"]
        item_id = data["item_id"]
        if not isinstance(delta, str) or not isinstance(item_id, str):
            raise TypeError("'delta' and 'item_id' must be strings")
        try:
            audio = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError):
            msg = f"{kind}: the delta is not valid base64 ({len(delta)} characters)"
            self._bad_event(kind, "invalid base64 audio", out, AudioFormatError(msg))
            return
        if self._out_fmt.bytes_per_sample == 2 and len(audio) % 2:
            msg = f"{kind}: the delta decodes to {len(audio)} bytes, not whole PCM16 samples"
            self._bad_event(kind, "odd-length PCM16 audio", out, AudioFormatError(msg))
            return
        self._on_audio(audio, item_id, data.get("content_index", 0), data.get("response_id"), out)

    def _on_audio_done(self, data: dict[str, Any], out: list[Any]) -> None:
        if data.get("response_id") in self._interrupted:
            return
        out.append(
            ev.RealtimeAudioEndEvent(item_id=data["item_id"], content_index=data.get("content_index", 0))
        )

    def _on_transcript_delta(self, data: dict[str, Any], out: list[Any]) -> None:
        rid = data.get("response_id")
        if rid in self._interrupted:
            return
        delta = data["delta"]
        out.append(
            ev.RealtimeTranscriptEvent(role="assistant", text=delta, is_final=False, item_id=data["item_id"])
        )
        if rid is not None:
            self.guardrails.on_delta(rid, delta)

    def _on_transcript_done(self, data: dict[str, Any], out: list[Any]) -> None:
        self._assistant_final(data, data.get("transcript") or "", out)

    def _on_text_done(self, data: dict[str, Any], out: list[Any]) -> None:
        self._assistant_final(data, data.get("text") or "", out)

    def _assistant_final(self, data: dict[str, Any], text: str, out: list[Any]) -> None:
        rid = data.get("response_id")
        self._history.set_assistant_text(data["item_id"], text)
        if rid in self._interrupted:
            return
        out.append(
            ev.RealtimeTranscriptEvent(role="assistant", text=text, is_final=True, item_id=data["item_id"])
        )
        if rid is not None:
            self.guardrails.on_done(rid, text)

    def _on_output_item_done(self, data: dict[str, Any], out: list[Any]) -> None:
        item = _item(data)
        self._history.upsert(item, None)
        if item.get("type") == "function_call":
            self.tools.on_function_call(item, out)

    def _on_item_added(self, data: dict[str, Any], out: list[Any]) -> None:
        self._history.upsert(_item(data), data.get("previous_item_id"))

    def _on_item_done(self, data: dict[str, Any], out: list[Any]) -> None:
        self._history.upsert(_item(data), None)

    def _on_item_deleted(self, data: dict[str, Any], out: list[Any]) -> None:
        self._history.delete(data["item_id"])

    def _on_user_delta(self, data: dict[str, Any], out: list[Any]) -> None:
        out.append(
            ev.RealtimeTranscriptEvent(
                role="user", text=data["delta"], is_final=False, item_id=data["item_id"]
            )
        )

    def _on_user_done(self, data: dict[str, Any], out: list[Any]) -> None:
        text = data["transcript"]
        self._history.set_user_transcript(data["item_id"], text)
        out.append(ev.RealtimeTranscriptEvent(role="user", text=text, is_final=True, item_id=data["item_id"]))

    def _on_transcription_failed(self, data: dict[str, Any], out: list[Any]) -> None:
        out.append(ev.RealtimeErrorEvent(error=data.get("error")))

    def _on_speech_started(self, data: dict[str, Any], out: list[Any]) -> None:
        self.set_state("listening", out)
        if self.playback.is_playing() or self._response_active:
            self._cut_playback(out)
            if not self._server_interrupts and self._response_active:
                self._cancel_response()

    def _on_thinking(self, data: dict[str, Any], out: list[Any]) -> None:
        self.set_state("thinking", out)

    # ---- used by _reconnect

    def _reset_after_reconnect(self) -> None:
        self._response_active = False
        # Asked for while the lost response was active: requested again once reconnected.
        self._resume_create = self._resume_create or self._create_pending
        self._create_sent = False
        self._create_pending = False
        self._cancel_sent = False
        self._current_response = None
        self.playback.reset()
