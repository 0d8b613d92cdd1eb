"""A live Realtime session: one WebSocket, one reader task, events out to subscribers.

The hot path is the reader (:meth:`Session._read_loop`). One ``recv_batch`` call takes every frame already
received; audio deltas arrive as native ``AudioDelta`` objects (base64 decoded in Rust, never a dict), other
events are parsed once; the batch is handled in one pass that appends events to one list, delivered to all
subscribers at once; frames the handlers want to send are queued and flushed after the batch. The rules the
server imposes live in the handlers: ``response.create`` is held while a response is active and coalesced;
interruption truncates at what was heard (:class:`~fastvoice.realtime._playback.PlaybackTracker`); tools and
handoffs are in :mod:`~fastvoice.realtime._tools_runner`, reconnection in
:mod:`~fastvoice.realtime._reconnect` (what it re-sends in :mod:`~fastvoice.realtime._inflight`), audio in
:mod:`~fastvoice.realtime._session_audio`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import types
from typing import Any, Self

from fastvoice import telemetry, transport
from fastvoice._fastvoice import AudioDelta, RingBuffer
from fastvoice.realtime import _protocol as P
from fastvoice.realtime import events as ev
from fastvoice.realtime._audio_in import AudioInput
from fastvoice.realtime._fanout import DEFAULT_SUBSCRIBER_BUFFER, EventStream, Fanout, Subscriber
from fastvoice.realtime._history import History
from fastvoice.realtime._inflight import TRACKED, Unacked
from fastvoice.realtime._playback import PlaybackTracker
from fastvoice.realtime._server_events import ServerEvents
from fastvoice.realtime._session_audio import SessionAudio, SessionClosedError
from fastvoice.realtime._tools_runner import GuardrailRunner, ToolRunner, tool_output_text
from fastvoice.realtime.agent import Agent
from fastvoice.realtime.auth import require_api_key
from fastvoice.realtime.config import ReconnectConfig, RunConfig

__all__ = ["Session", "SessionClosedError", "start_session", "stop_session"]

logger = logging.getLogger("fastvoice")

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
_ids = itertools.count(1)


def _display_url(url: str) -> str:
    """``url`` without what may carry secrets: the query (``?api-key=``), fragment and user info."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"


def _session_url(url: str | None, model: str) -> str:
    base = url or OPENAI_REALTIME_URL
    if "?" in base:
        query = [p.partition("=")[0] for p in base.split("?", 1)[1].split("&")]
        # A call's socket (``?call_id=``, e.g. an accepted SIP call) joins a session whose model was chosen
        # when the call was accepted: "set call_id instead" of model, as the openai package's connect() says.
        if "model" in query or "call_id" in query:
            return base
    return f"{base}{'&' if '?' in base else '?'}model={model}"


class Session(SessionAudio, ServerEvents):
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
        subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER,
    ) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"start_session needs a fastvoice.realtime.Agent, got {type(agent).__name__}")
        self.config = config if config is not None else RunConfig()
        if not isinstance(self.config, RunConfig):
            raise TypeError("config must be a fastvoice.realtime.RunConfig")
        key = require_api_key(api_key)  # fails before any connection attempt
        self.session_id = f"fvs_{next(_ids)}"
        self._meta = {"session_id": self.session_id}  # shared by the per-chunk telemetry events
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
        if (
            isinstance(subscriber_buffer, bool)
            or not isinstance(subscriber_buffer, int)
            or subscriber_buffer < 1
        ):
            raise ValueError(f"subscriber_buffer must be a positive int, got {subscriber_buffer!r}")
        self._fanout = Fanout()
        self._subscriber_buffer = subscriber_buffer
        self._stream = EventStream(event_buffer)
        self._fanout.add_stream(self._stream)
        self._stream_attached = True
        self._stream_used = False
        self.playback = PlaybackTracker(self._out_fmt)
        self.playback._on_change = self._apply_output
        # What stream_audio_from() set: (ring, chunk_ms, pace, g711_codes).
        self._mic: tuple[RingBuffer, float, bool, bool] | None = None
        self._audio_in = AudioInput(self._in_fmt)
        rc = self.reconnect_config
        self._unacked = Unacked(rc.max_buffered_audio_bytes, enabled=rc.enabled)
        self._history = History()
        self.tools = ToolRunner(self)
        self.guardrails = GuardrailRunner(self, self.config.guardrail_debounce_chars)
        self._conn: transport.Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._closed = False
        self._reconnecting = False
        self.state: ev.AgentState = "idle"
        # Response bookkeeping (see request_response).
        self._response_active = False
        self._create_sent = False
        self._create_pending = False
        self._resume_create = False
        self._cancel_sent = False
        self._current_response: str | None = None
        self._interrupted: set[str] = set()  # responses whose deltas are dropped
        self._resp_seq = itertools.count(1)
        self._started_ns = 0
        self._span: Any = None
        self.audio_bytes_sent = 0
        self._audio_rx = 0  # bytes of the deltas handled in Python
        self._native_rx = 0  # bytes the native sinks of earlier connections decoded
        self._rx_conn: transport.Connection | None = None  # the connection whose native count is live
        self.reconnects = 0
        self._handlers = self._handler_table()
        self._idle_timer: asyncio.TimerHandle | None = None
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
            self._attach_media(self._conn)
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
            except TimeoutError:
                await self.stop()
                raise TimeoutError(
                    f"session {self.session_id}: no session.updated from {_display_url(self._url)} within "
                    f"{self._ready_timeout:g} s of sending session.update (the server did not acknowledge "
                    "the configuration; raise ready_timeout, or pass ready_timeout=None not to wait)"
                ) from None
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
        await self._fanout.drain()  # no subscriber pump task outlives the session

    def _finish(self, reason: str) -> None:
        """Common end of a session (stopped, or the connection lost for good)."""
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.tools.cancel()
        self.guardrails.cancel()
        self.deliver([ev.RealtimeConnectionEvent(status="disconnected", reason=reason)])
        self._fanout.close()
        telemetry.execute(
            telemetry.REALTIME_SESSION_STOP,
            {
                "duration": time.monotonic_ns() - self._started_ns,
                "audio_bytes_sent": self.audio_bytes_sent,
                "audio_bytes_received": self.audio_bytes_received,
                "reconnects": self.reconnects,
                "dropped_audio_bytes": self._unacked.dropped_bytes,
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
        if self._reader is None:
            raise RuntimeError(f"session {self.session_id} is not started: await session.start() first")

    # ---- subscribers
    # ----------------------------------------------------------------------------------------------

    def subscribe(self, handler: Subscriber, *, buffer: int | None = None) -> None:
        """Deliver every later event to ``handler``: a sync or async callable of one event, or an
        ``asyncio.Queue``. Subscribing the same handler again does nothing.

        An async handler runs in its own task with a backlog of at most ``buffer`` events (default: the
        session's ``subscriber_buffer``, 4096); a queue is bounded by its own ``maxsize``. When a slow handler
        falls behind, the oldest events are dropped and it receives a ``RealtimeEventsDroppedEvent`` with the
        count where the gap is. :meth:`subscriber_backlog` tells how far behind it is.

        An application that subscribes before it ever iterates the session uses subscribers, so the session
        stops keeping a backlog for ``async for`` (which would otherwise hold up to ``event_buffer`` events,
        audio included, that nobody reads); an ``async for`` started later sees events from then on.
        """
        if not self._stream_used and self._stream_attached:
            self._fanout.remove_stream(self._stream)
            self._stream = EventStream(self._stream.maxlen)
            self._stream_attached = False
        self._fanout.subscribe(handler, self._subscriber_buffer if buffer is None else buffer)

    def subscriber_backlog(self, handler: Subscriber) -> int:
        """Events delivered to ``handler`` that it has not handled yet (at most its ``buffer``)."""
        return self._fanout.backlog(handler)

    def unsubscribe(self, handler: Subscriber) -> None:
        """Stop delivering to ``handler`` (unknown handlers are ignored)."""
        self._fanout.unsubscribe(handler)

    def __aiter__(self) -> EventStream:
        """``async for event in session``: every event since the session started (bounded backlog; see
        :meth:`subscribe`), until the session ends."""
        self._stream_used = True
        if not self._stream_attached:
            self._stream_attached = True
            if self._closed:
                self._stream.end()
            else:
                self._fanout.add_stream(self._stream)
        return self._stream

    def deliver(self, events: list[Any]) -> None:
        if events:
            self._fanout.deliver(events)

    def _server_committed(self) -> None:
        self._take_pump_audio(self._conn, keep=False)

    # ---- sending
    # ------------------------------------------------------------------------------------------------

    async def _send_json(self, event: dict[str, Any]) -> None:
        # Recorded before sending: until the server acknowledges it, a reconnect sends it again.
        unacked = self._unacked
        event, untracked = unacked.add_frame(event, sent=True)
        if untracked:
            reason = "the server left it unacknowledged for too long; it is no longer tracked"
            self.deliver([ev.RealtimeMessageLostEvent(f["type"], f, reason) for f in untracked])
        tracked = unacked.enabled and event["type"] in TRACKED
        conn = self._conn
        if conn is None or self._reconnecting:
            if not tracked:
                unacked.add_pending(event)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("fastvoice session %s: send %s", self.session_id, event["type"])
        try:
            await conn.send_text(json.dumps(event, separators=(",", ":")))
        except transport.TransportError:
            # The reader sees the same failure and reconnects; the frame goes out after that.
            if not self.reconnect_config.enabled:
                raise SessionClosedError(f"session {self.session_id} lost its connection") from None
            if not tracked:
                unacked.add_pending(event)

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
                if exc.code == 1001 and self.reconnect_config.enabled:  # "going away": try elsewhere/again
                    if not await recover(self, exc):
                        break
                    continue
                logger.debug("fastvoice session %s: server closed (%s)", self.session_id, exc.code)
                self._conn = None
                self._finish(f"server closed the connection ({exc.code})")
                break
            except Exception as exc:
                if not await recover(self, exc):
                    break
                continue
            out: list[Any] = []
            for msg in batch:
                try:  # free in CPython 3.11+ unless it raises
                    if type(msg) is AudioDelta:
                        self._on_audio(msg.pcm, msg.item_id, msg.content_index, msg.response_id, out)
                    elif type(msg) is str:
                        self._on_text(msg, out)
                    else:
                        out.append(
                            ev.RealtimeErrorEvent(error=ValueError("unexpected binary frame from server"))
                        )
                except Exception as exc:  # a bug must not kill the reader (and with it the session)
                    logger.exception("fastvoice session %s: failed to handle a server event", self.session_id)
                    out.append(ev.RealtimeErrorEvent(error=exc))
            self._flush_history(out)
            if out:
                self._fanout.deliver(out)
            if self._outbox:
                try:
                    await self.flush()
                except SessionClosedError:
                    pass  # the next receive reports the lost connection
        await self._fanout.drain()  # the session ended on its own: no pump task outlives it


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
    subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER,
) -> Session:
    """Connect a :class:`Session` for ``agent`` and return it (also usable as ``async with``).

    ``api_key``: explicit, else resolved (``CODEX_API_KEY``, ``auth.json``, ``OPENAI_API_KEY``); a missing
    key raises ``MissingAPIKeyError`` before connecting. ``url``: the Realtime endpoint (default OpenAI's;
    ``?model=`` is added when absent, but never to a call's ``?call_id=`` URL, see
    :func:`fastvoice.telephony.sip.attach`). ``reconnect``: survive a dropped WebSocket as
    ``config.reconnect`` says. ``raw_events``: also deliver every JSON server event as
    ``RealtimeRawModelEvent`` (unknown events always are; audio deltas never, they stay native).
    ``event_buffer``: backlog bound of ``async for``; ``subscriber_buffer``: that of each async subscriber
    (see :meth:`Session.subscribe`). ``connect_kwargs``: passed to :func:`fastvoice.transport.connect`
    (timeouts, ``ca_file``...). ``ready_timeout``: wait this long for the server's ``session.updated``
    before returning (``None``: do not wait); an ``error`` in reply to the first ``session.update`` raises
    ``ValueError``.
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
        subscriber_buffer=subscriber_buffer,
    )
    return await session.start()


async def stop_session(session: Session) -> None:
    """Same as ``await session.stop()``."""
    await session.stop()
