"""A live Realtime session: one WebSocket, one reader task, events out to subscribers.

The hot path is the reader (:meth:`Session._read_loop`). One ``recv_batch`` call takes every frame already
received; audio deltas arrive as native ``AudioDelta`` objects (base64 decoded in Rust, never a dict), other
events are parsed once; the batch is handled in one pass that appends events to one list, delivered to all
subscribers at once; frames the handlers want to send are queued and flushed after the batch. The rules the
server imposes live in the handlers: ``response.create`` is held while a response is active and coalesced;
interruption truncates at what was heard (:class:`~fastvoice.realtime._playback.PlaybackTracker`); tools and
handoffs are in :mod:`~fastvoice.realtime._tools_runner`, reconnection in
:mod:`~fastvoice.realtime._reconnect`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
import types
from collections.abc import Callable
from typing import Any, Self

from fastvoice import telemetry, transport
from fastvoice._fastvoice import AudioDelta
from fastvoice.realtime import _protocol as P
from fastvoice.realtime import events as ev
from fastvoice.realtime._audio_in import AudioInput, OutageBuffer, Payload, g711_append_text
from fastvoice.realtime._fanout import EventStream, Fanout, Subscriber
from fastvoice.realtime._history import History
from fastvoice.realtime._playback import PlaybackTracker
from fastvoice.realtime._tools_runner import GuardrailRunner, ToolRunner, tool_output_text
from fastvoice.realtime.agent import Agent
from fastvoice.realtime.auth import require_api_key
from fastvoice.realtime.config import ReconnectConfig, RunConfig

try:
    import orjson

    _loads: Callable[[str], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    _loads = json.loads

__all__ = ["Session", "SessionClosedError", "start_session", "stop_session"]

logger = logging.getLogger("fastvoice")

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
_ids = itertools.count(1)


class SessionClosedError(RuntimeError):
    """The session was stopped (or lost its connection for good); it cannot send any more."""


def _session_url(url: str | None, model: str) -> str:
    base = url or OPENAI_REALTIME_URL
    if "model=" in base.split("?", 1)[-1] and "?" in base:
        return base
    return f"{base}{'&' if '?' in base else '?'}model={model}"


class Session:
    """A Realtime conversation. Create with :func:`start_session` (or ``async with`` on it)."""

    def __init__(
        self,
        agent: Agent,
        config: RunConfig | None = None,
        *,
        api_key: str | None = None,
        url: str | None = None,
        reconnect: bool = True,
        raw_events: bool = False,
        event_buffer: int = 4096,
        connect_kwargs: dict[str, Any] | None = None,
        ready_timeout: float | None = 10.0,
    ) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"start_session needs a fastvoice.realtime.Agent, got {type(agent).__name__}")
        self.config = config if config is not None else RunConfig()
        if not isinstance(self.config, RunConfig):
            raise TypeError("config must be a fastvoice.realtime.RunConfig")
        key = require_api_key(api_key)  # fails before any connection attempt
        self.session_id = f"fvs_{next(_ids)}"
        self.agent = agent
        self.model = P.resolve_model(agent, self.config)
        self._url = _session_url(url, self.model)
        self._headers = {"Authorization": f"Bearer {key}"}
        self._connect_kwargs = dict(connect_kwargs or {})
        self.reconnect_config = self.config.reconnect if reconnect else ReconnectConfig(enabled=False)
        settings = self.config.model_settings
        self._in_fmt = settings.input_format
        self._out_fmt = settings.output_format
        td = settings.turn_detection
        self._server_interrupts = td is not None and td.interrupt_response is not False
        self._raw_events = raw_events
        self._fanout = Fanout()
        self._stream = EventStream(event_buffer)
        self._fanout.add_stream(self._stream)
        self.playback = PlaybackTracker(self._out_fmt)
        self._audio_in = AudioInput(self._in_fmt)
        self._outage = OutageBuffer(self.reconnect_config.max_buffered_audio_bytes)
        self._history = History()
        self.tools = ToolRunner(self)
        self.guardrails = GuardrailRunner(self, self.config.guardrail_debounce_chars)
        self._conn: transport.Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._pending_text: list[dict[str, Any]] = []  # user frames sent while reconnecting
        self._closed = False
        self._reconnecting = False
        self.state: ev.AgentState = "idle"
        # Response bookkeeping (see request_response).
        self._response_active = False
        self._create_sent = False
        self._create_pending = False
        self._cancel_sent = False
        self._current_response: str | None = None
        self._interrupted: set[str] = set()  # responses whose deltas are dropped
        self._resp_seq = itertools.count(1)
        self._started_ns = 0
        self._span: Any = None
        self.audio_bytes_sent = 0
        self.audio_bytes_received = 0
        self.reconnects = 0
        self._handlers = self._handler_table()
        self._ready_timeout = ready_timeout
        self._ready: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "reconnecting" if self._reconnecting else "open"
        return f"<fastvoice.realtime.Session {self.session_id} agent={self.agent.name!r} {state}>"

    # ---- lifecycle
    # ------------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Connect, send the full ``session.update`` as the first frame, start the reader."""
        if self._conn is not None or self._closed:
            raise RuntimeError("a Session is started once")
        self._started_ns = time.monotonic_ns()
        tracer = telemetry._tracer()
        if tracer is not None:
            self._span = tracer.start_span(
                "fastvoice.realtime.session", attributes={"session_id": self.session_id, "model": self.model}
            )
        try:
            self._conn = await self._open()
            await self._send_json(P.build_session_update(self.agent, self.config))
        except BaseException as exc:
            self._closed = True
            self._end_span(exc)
            raise
        telemetry.execute(
            telemetry.REALTIME_SESSION_START,
            {"monotonic_time": self._started_ns, "system_time": time.time_ns()},
            {"session_id": self.session_id, "agent": self.agent.name, "model": self.model},
        )
        if self._ready_timeout is not None:
            self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        self.deliver([ev.RealtimeConnectionEvent(status="connected")])
        if self._ready is not None:
            # The server acknowledges the configuration before we hand the session out, so the first
            # response already uses the agent's voice and tools (and a refused config fails here, clearly).
            try:
                await asyncio.wait_for(asyncio.shield(self._ready), self._ready_timeout or None)
            except BaseException:
                await self.stop()
                raise
        return self

    async def _open(self) -> transport.Connection:
        logger.debug("fastvoice session %s: connecting", self.session_id)
        kwargs = {"open_timeout": 10.0, **self._connect_kwargs}
        return await transport.connect(self._url, headers=self._headers, decode_audio=True, **kwargs)

    async def stop(self) -> None:
        """Close the connection, cancel running tools, end every event stream. Idempotent."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        tasks = [*self.tools.cancel(), *self.guardrails.cancel()]
        if self._reader is not None and self._reader is not current:
            self._reader.cancel()
            tasks.append(self._reader)
        tasks = [t for t in tasks if t is not current]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5.0)
            except (TimeoutError, transport.TransportError):
                pass
        self._finish("stopped")

    def _finish(self, reason: str) -> None:
        """Common end of a session (stopped, or the connection lost for good)."""
        self._closed = True
        self.deliver([ev.RealtimeConnectionEvent(status="disconnected", reason=reason)])
        self._fanout.close()
        telemetry.execute(
            telemetry.REALTIME_SESSION_STOP,
            {
                "duration": time.monotonic_ns() - self._started_ns,
                "audio_bytes_sent": self.audio_bytes_sent,
                "audio_bytes_received": self.audio_bytes_received,
                "reconnects": self.reconnects,
                "dropped_audio_bytes": self._outage.dropped_bytes,
            },
            {"session_id": self.session_id, "agent": self.agent.name, "reason": reason},
        )
        self._end_span(None)

    def _end_span(self, exc: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is not None:
            if exc is not None:
                span.record_exception(exc)
            span.end()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._reconnecting and not self._closed

    @property
    def dropped_audio_bytes(self) -> int:
        """Input audio lost because the outage buffer overflowed while reconnecting."""
        return self._outage.dropped_bytes

    @property
    def history(self) -> tuple[ev.HistoryItem, ...]:
        return self._history.snapshot()

    async def __aenter__(self) -> Self:
        if self._conn is None and not self._closed:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.session_id} is closed")

    # ---- subscribers
    # ----------------------------------------------------------------------------------------------

    def subscribe(self, handler: Subscriber) -> None:
        """Deliver every later event to ``handler``: a sync or async callable of one event, or an
        ``asyncio.Queue``. Subscribing the same handler again does nothing."""
        self._fanout.subscribe(handler)

    def unsubscribe(self, handler: Subscriber) -> None:
        """Stop delivering to ``handler`` (unknown handlers are ignored)."""
        self._fanout.unsubscribe(handler)

    def __aiter__(self) -> EventStream:
        """``async for event in session``: every event since the session started (bounded backlog), until
        the session ends."""
        return self._stream

    def deliver(self, events: list[Any]) -> None:
        if events:
            self._fanout.deliver(events)

    # ---- sending
    # ------------------------------------------------------------------------------------------------

    async def _send_json(self, event: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None or self._reconnecting:
            self._pending_text.append(event)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("fastvoice session %s: send %s", self.session_id, event["type"])
        try:
            await conn.send_text(json.dumps(event, separators=(",", ":")))
        except transport.TransportError:
            # The reader sees the same failure and reconnects; the frame goes out after that.
            if not self.reconnect_config.enabled:
                raise SessionClosedError(f"session {self.session_id} lost its connection") from None
            self._pending_text.append(event)

    async def send_frame(self, event: dict[str, Any]) -> None:
        """Send one client event now (internal; tools and public API go through here)."""
        await self._send_json(event)

    def queue_frame(self, event: dict[str, Any]) -> None:
        """Queue a frame to go out after the current batch (handlers are synchronous)."""
        self._outbox.append(event)

    async def flush(self) -> None:
        box = self._outbox
        while box:
            await self._send_json(box.pop(0))

    async def send_raw(self, event: dict[str, Any]) -> None:
        """Send any client event dict as-is (it must have a ``type``)."""
        self._check_open()
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("send_raw takes a dict with a string 'type'")
        await self._send_json(event)

    async def send_audio(self, data: Any, sample_rate: int = 24000, commit: bool = False) -> None:
        """Send microphone audio: PCM16 bytes, or a numpy int16/float32 (float64) array, mono, at any
        ``sample_rate`` (resampled natively to the session's input rate by one persistent stream per rate;
        encoded to G.711 when the session uses it). Raises ``AudioFormatError`` for odd-length PCM16, other
        dtypes, multi-channel arrays or NaN samples; ``SessionClosedError`` after stop. While reconnecting the
        audio is kept (bounded) and sent once the connection is back."""
        self._check_open()
        payload = self._audio_in.prepare(data, sample_rate)
        await self._send_audio_payload(payload)
        if commit:
            await self.commit_audio()

    async def _send_audio_payload(self, payload: Payload) -> None:
        n = self._audio_in.wire_bytes(payload)
        if n == 0:
            return
        conn = self._conn
        if conn is None or self._reconnecting:
            self._outage.add(payload)
            return
        try:
            if isinstance(payload, bytes) and self._in_fmt.bytes_per_sample == 1:
                await conn.send_text(g711_append_text(payload))
            else:
                await conn.send_audio(payload)
        except transport.TransportError:
            if not self.reconnect_config.enabled:
                raise SessionClosedError(f"session {self.session_id} lost its connection") from None
            self._outage.add(payload)
            return
        self.audio_bytes_sent += n
        telemetry.execute(telemetry.REALTIME_AUDIO_SENT, {"bytes": n}, {"session_id": self.session_id})

    async def commit_audio(self) -> None:
        """Commit the input audio buffer (push-to-talk end of turn); resampler tails are sent first."""
        self._check_open()
        for tail in self._audio_in.flush():
            await self._send_audio_payload(tail)
        await self._send_json(P.input_audio_buffer_commit())

    async def send_message(self, text: str) -> None:
        """Send a typed user message and ask for a response."""
        self._check_open()
        await self._send_json(P.user_message(text))
        self.request_response()
        await self.flush()

    async def send_tool_result(self, call_id: str, result: Any, *, create_response: bool = True) -> None:
        """Answer a client tool call: ``result`` (a str, or anything JSON-serializable) is sent at once."""
        self._check_open()
        await self._send_json(P.function_call_output(call_id, tool_output_text(result)))
        if create_response:
            self.request_response()
            await self.flush()

    async def approve_tool_call(self, call_id: str) -> None:
        """Run a ``needs_approval`` tool the model called."""
        self._check_open()
        await self.tools.approve(call_id)

    async def reject_tool_call(self, call_id: str, message: str | None = None) -> None:
        """Refuse a ``needs_approval`` call; the model is told ``message`` (or a default refusal)."""
        self._check_open()
        await self.tools.reject(call_id, message)

    async def update_agent(self, agent: Agent) -> None:
        """Switch to ``agent`` (instructions and tools; voice, formats and model are unchanged)."""
        self._check_open()
        if not isinstance(agent, Agent):
            raise TypeError(f"update_agent needs an Agent, got {type(agent).__name__}")
        self.switch_agent(agent)
        await self.flush()

    def switch_agent(self, agent: Agent) -> None:
        self.agent = agent
        self.queue_frame(P.build_agent_update(agent, self.config, model=self.model))

    async def interrupt(self) -> None:
        """Stop the assistant now: truncate what was not heard, drop the rest, cancel the response."""
        self._check_open()
        out: list[Any] = []
        self._cut_playback(out)
        self._create_pending = False
        if self._response_active:
            self._cancel_response()
        self.deliver(out)
        await self.flush()

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

    async def guardrail_tripped(self, name: str, text: str, info: Any, response_id: str) -> None:
        out: list[Any] = []
        if self._current_response == response_id:
            self._cut_playback(out)
            if self._response_active:
                self._cancel_response()
        self._interrupted.add(response_id)
        out.append(ev.RealtimeGuardrailTrippedEvent(guardrail=name, text=text, output_info=info))
        note = (
            f"Your previous response was stopped by the output guardrail {name!r}. "
            "Do not repeat it; answer differently."
        )
        item = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": note}]}
        self.queue_frame(P.conversation_item_create(item))
        self.request_response()
        self.deliver(out)
        await self.flush()

    # ---- reading
    # ------------------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        from fastvoice.realtime._reconnect import recover

        while not self._closed:
            conn = self._conn
            assert conn is not None
            try:
                batch = await conn.recv_batch()
            except asyncio.CancelledError:
                raise
            except transport.ConnectionClosedOK as exc:
                logger.debug("fastvoice session %s: server closed (%s)", self.session_id, exc.code)
                self._conn = None
                self._finish(f"server closed the connection ({exc.code})")
                return
            except Exception as exc:
                if not await recover(self, exc):
                    return
                continue
            out: list[Any] = []
            for msg in batch:
                if type(msg) is AudioDelta:
                    self._on_audio(msg.pcm, msg.item_id, msg.content_index, msg.response_id, out)
                elif type(msg) is str:
                    self._on_text(msg, out)
                else:
                    out.append(ev.RealtimeErrorEvent(error=ValueError("unexpected binary frame from server")))
            self._flush_history(out)
            if out:
                self._fanout.deliver(out)
            if self._outbox:
                await self.flush()

    def _flush_history(self, out: list[Any]) -> None:
        if self._history.changed:
            out.append(ev.RealtimeHistoryUpdatedEvent(history=self._history.snapshot()))

    def _on_audio(
        self, audio: bytes, item_id: str, content_index: int, response_id: str | None, out: list[Any]
    ) -> None:
        n = len(audio)
        self.audio_bytes_received += n
        telemetry.execute(telemetry.REALTIME_AUDIO_RECEIVED, {"bytes": n}, {"session_id": self.session_id})
        if response_id in self._interrupted:
            return
        if self.state != "speaking":
            self.set_state("speaking", out)
        self.playback.on_audio(item_id, content_index, response_id, audio)
        out.append(
            ev.RealtimeAudioEvent(
                audio=audio, item_id=item_id, content_index=content_index, response_id=response_id
            )
        )

    def _on_text(self, text: str, out: list[Any]) -> None:
        try:
            data = _loads(text)
        except ValueError as exc:
            logger.debug("fastvoice session %s: malformed JSON from server", self.session_id)
            out.append(ev.RealtimeErrorEvent(error=ValueError(f"malformed JSON from server: {exc}")))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            out.append(ev.RealtimeErrorEvent(error=ValueError("server event without a type")))
            return
        kind = data["type"]
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("fastvoice session %s: recv %s", self.session_id, kind)
        if self._raw_events:
            out.append(ev.RealtimeRawModelEvent(data=data))
        handler = self._handlers.get(kind)
        if handler is None:
            if not self._raw_events:
                out.append(ev.RealtimeRawModelEvent(data=data))
            return
        try:
            handler(data, out)
        except (KeyError, TypeError, ValueError) as exc:
            out.append(ev.RealtimeErrorEvent(error=ValueError(f"unexpected shape of {kind} event: {exc!r}")))

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
        self._response_active = True
        self._create_sent = False
        self._cancel_sent = False
        self._current_response = data["response"]["id"]
        self.set_state("thinking", out)
        out.append(ev.RealtimeAgentStartEvent(agent=self.agent))

    def _on_response_done(self, data: dict[str, Any], out: list[Any]) -> None:
        self._response_active = False
        self._cancel_sent = False
        rid = data["response"].get("id")
        self._current_response = None
        self._interrupted.discard(rid)
        self._flush_history(out)
        out.append(ev.RealtimeAgentEndEvent(agent=self.agent))
        for item in data["response"].get("output") or ():
            if item.get("type") == "function_call":
                self.tools.on_function_call(item, out)
        if self._create_pending:
            self._create_pending = False
            self.request_response()
        if self._create_sent or self.tools.tasks:
            self.set_state("thinking", out)
        elif not self.playback.is_playing():
            self.set_state("idle", out)

    def _on_audio_json(self, data: dict[str, Any], out: list[Any]) -> None:
        # Deltas the native parser did not take (e.g. an odd-length G.711 chunk) come here.
        audio = base64.b64decode(data["delta"])
        self._on_audio(audio, data["item_id"], data.get("content_index", 0), data.get("response_id"), out)

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
        item = data["item"]
        self._history.upsert(item, None)
        if item.get("type") == "function_call":
            self.tools.on_function_call(item, out)

    def _on_item_added(self, data: dict[str, Any], out: list[Any]) -> None:
        self._history.upsert(data["item"], data.get("previous_item_id"))

    def _on_item_done(self, data: dict[str, Any], out: list[Any]) -> None:
        self._history.upsert(data["item"], None)

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
        self._create_sent = False
        self._create_pending = False
        self._cancel_sent = False
        self._current_response = None
        self.playback.reset()


def _ignore(data: dict[str, Any], out: list[Any]) -> None:
    return None


async def start_session(
    agent: Agent,
    config: RunConfig | None = None,
    api_key: str | None = None,
    url: str | None = None,
    *,
    reconnect: bool = True,
    raw_events: bool = False,
    event_buffer: int = 4096,
    connect_kwargs: dict[str, Any] | None = None,
    ready_timeout: float | None = 10.0,
) -> Session:
    """Connect a :class:`Session` for ``agent`` and return it (also usable as ``async with``).

    ``api_key``: explicit, else resolved (``CODEX_API_KEY``, ``auth.json``, ``OPENAI_API_KEY``); a missing
    key raises ``MissingAPIKeyError`` before connecting. ``url``: the Realtime endpoint (default OpenAI's;
    ``?model=`` is added when absent). ``reconnect``: survive a dropped WebSocket as ``config.reconnect``
    says. ``raw_events``: also deliver every JSON server event as ``RealtimeRawModelEvent`` (unknown events
    always are; audio deltas never, they stay native). ``event_buffer``: backlog bound of ``async for``.
    ``connect_kwargs``: passed to :func:`fastvoice.transport.connect` (timeouts, ``ca_file``...).
    ``ready_timeout``: wait this long for the server's ``session.updated`` before returning (``None``: do not
    wait); an ``error`` in reply to the first ``session.update`` raises ``ValueError``.
    """
    session = Session(
        agent,
        config,
        api_key=api_key,
        url=url,
        reconnect=reconnect,
        raw_events=raw_events,
        event_buffer=event_buffer,
        connect_kwargs=connect_kwargs,
        ready_timeout=ready_timeout,
    )
    return await session.start()


async def stop_session(session: Session) -> None:
    """Same as ``await session.stop()``."""
    await session.stop()
