"""The bridge core: one caller's audio joined to a :class:`fastvoice.realtime.Session`.

A *caller transport* (:class:`CallerTransport`) is the seam: it gives the caller's audio, takes the
agent's, says what the caller has actually heard, and can flush what is still buffered on the
caller's side. :class:`MediaStreamCaller` is the one for phone providers' media WebSockets (Twilio,
Telnyx, Plivo), with all audio handled natively; the browser front end is another.

:func:`bridge_call` binds a started caller to a session: the session's microphone and playback rings
are the caller's, so no audio chunk crosses into Python; an interruption clears the caller's side and
truncates the assistant item at what the caller heard; DTMF digits become events (and, optionally,
user text); a hang-up or dropped socket ends the session, and a session that ends hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

from fastvoice import _fastvoice, transport
from fastvoice._fastvoice import RingBuffer
from fastvoice.realtime import Agent, RunConfig, Session
from fastvoice.realtime import events as ev
from fastvoice.telephony._dialect import CallDtmf, CallEvent, CallStart, CallStop, Dialect

__all__ = ["Call", "CallerTransport", "MediaStreamCaller", "bridge_call"]

log = logging.getLogger("fastvoice.telephony")

#: Seconds of caller audio the microphone ring holds while the session connects.
MIC_SECONDS = 10
#: Seconds of agent audio the playback ring holds (a reply streams faster than it plays).
PLAYBACK_SECONDS = 120
#: Seconds without a key press after which typed digits go to the model (``#`` sends them at once).
DTMF_PAUSE_S = 1.5
#: Media frames kept from before the stream is attached (about 5 s of 20 ms frames).
EARLY_FRAMES = 250


class CallerTransport(Protocol):
    """One caller's audio, as the bridge needs it."""

    start: CallStart

    def attach(
        self,
        *,
        mic: RingBuffer,
        mic_rate: int,
        mic_codes: bool,
        playback: RingBuffer,
        playback_rate: int,
        playback_codes: bool,
    ) -> None:
        """From now on write the caller's audio into ``mic`` (samples at ``mic_rate``, or G.711 codes when
        ``mic_codes``) and play what ``playback`` holds to the caller."""
        ...

    @property
    def heard(self) -> int:
        """The caller's position in ``playback``'s ``consumed`` numbering."""
        ...

    def clear(self) -> None:
        """Drop agent audio not yet heard, here and on the caller's side."""
        ...

    async def next_event(self) -> CallEvent | None:
        """The next DTMF digit or stop; None once the caller is gone."""
        ...

    async def close(self) -> None: ...


class MediaStreamCaller:
    """A phone provider's media WebSocket on the native transport (see ``_socket.take_over``)."""

    def __init__(self, conn: transport.Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect
        self.start = CallStart(dialect.name, "", "")
        self._native: _fastvoice.CallerStream | None = None
        self._early: list[str] = []
        self._early_binary: list[bytes] = []
        self._events: list[CallEvent] = []
        self.bad_messages = 0

    def __repr__(self) -> str:
        return f"<fastvoice.telephony.MediaStreamCaller {self.dialect.name} stream={self.start.stream_id!r}>"

    async def wait_start(self, timeout: float = 10.0) -> CallStart:
        """Read until the provider's ``start``; media before it is kept for the session."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._read()
                if event is None:
                    raise ConnectionError(f"the {self.dialect.name} stream ended before its start message")
                if isinstance(event, CallStart):
                    self.start = event
                    return event
                self._events.append(event)

    async def _read(self) -> CallEvent | None:
        """The next event Python must see; media reaching Python (before ``attach``) is kept or fed."""
        while True:
            try:
                text = await self.conn.recv()
            except transport.ConnectionClosed:
                return None
            native = self._native
            if isinstance(text, bytes):
                # Binary frames are audio (a browser's); the native stream takes them once attached,
                # so one reaching Python then is malformed (counted there).
                if native is None and len(self._early_binary) < EARLY_FRAMES:
                    self._early_binary.append(text)
                continue
            if not isinstance(text, str):
                continue  # an accepted socket never decodes Realtime audio deltas
            if native is not None and native.feed(text):
                continue
            try:
                event = self.dialect.parse(text)
            except ValueError as exc:
                self.bad_messages += 1
                log.warning("%s: ignoring a malformed message: %s", self.dialect.name, exc)
                continue
            if event is not None:
                return event
            if native is None and len(self._early) < EARLY_FRAMES and '"media"' in text:
                self._early.append(text)

    def attach(
        self,
        *,
        mic: RingBuffer,
        mic_rate: int,
        mic_codes: bool,
        playback: RingBuffer,
        playback_rate: int,
        playback_codes: bool,
    ) -> None:
        f = self.dialect.framing(self.start)
        early, self._early = self._early, []
        early_binary, self._early_binary = self._early_binary, []
        self._native = _fastvoice.caller_attach(
            self.conn._native,
            media_prefix=f.media_prefix,
            media_suffix=f.media_suffix,
            mark_prefix=f.mark_prefix,
            mark_suffix=f.mark_suffix,
            clear=f.clear,
            media_event=f.media_event,
            ack_event=f.ack_event,
            binary=f.binary,
            encoding=self.start.encoding,
            sample_rate=self.start.sample_rate,
            big_endian=self.start.big_endian,
            mic=mic,
            mic_rate=mic_rate,
            mic_codes=mic_codes,
            playback=playback,
            playback_rate=playback_rate,
            playback_codes=playback_codes,
            early=early,  # routed first; then the frames queued unread, then the live ones: in order
            early_binary=early_binary,
        )

    @property
    def heard(self) -> int:
        return self._native.heard if self._native is not None else 0

    @property
    def stats(self) -> tuple[int, int, int, int, int, int]:
        """The native stream's frames in and out, marks acked, underruns, bad frames, max late tick (µs)."""
        return self._native.stats if self._native is not None else (0, 0, 0, 0, 0, 0)

    def clear(self) -> None:
        if self._native is not None:
            self._native.clear()

    async def next_event(self) -> CallEvent | None:
        if self._events:
            return self._events.pop(0)
        return await self._read()

    async def close(self) -> None:
        with contextlib.suppress(transport.TransportError):
            await self.conn.close()


def session_config(start: CallStart, config: RunConfig | None, session_format: str) -> RunConfig:
    """``config`` with the call's audio format: the caller's own law when the session can speak it
    (``session_format="caller"``), so audio passes through untouched; else PCM16 at 24 kHz."""
    config = config if config is not None else RunConfig()
    if (
        session_format == "pcm16"
        or start.encoding not in ("audio/pcmu", "audio/pcma")
        or start.sample_rate != 8000
    ):
        fmt = "audio/pcm"
    else:
        fmt = start.encoding
    ms = dataclasses.replace(config.model_settings, input_audio_format=fmt, output_audio_format=fmt)
    return dataclasses.replace(config, model_settings=ms)


class Call:
    """A call bridged to a realtime session: its ``start``, the ``session`` (tools, handoffs and events
    as usual) and the caller. Iterate :meth:`events` for DTMF digits, the stop and the session's events."""

    def __init__(self, caller: CallerTransport, session: Session, *, dtmf_as_text: bool) -> None:
        self.caller = caller
        self.start = caller.start
        self.session = session
        self.dtmf_as_text = dtmf_as_text
        self.end_reason: str | None = None
        # Bounded: a call nobody reads keeps only its latest events.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(4096)
        self._done = asyncio.Event()
        self._keys = ""
        self._keys_timer: asyncio.Task[None] | None = None
        self._tasks = [
            asyncio.create_task(self._caller_loop(), name="fastvoice-call-caller"),
            asyncio.create_task(self._session_loop(), name="fastvoice-call-session"),
        ]

    def __repr__(self) -> str:
        state = f"ended ({self.end_reason})" if self.end_reason else "live"
        return f"<fastvoice.telephony.Call {self.start.provider} {self.start.call_id!r} {state}>"

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    def _emit(self, event: Any) -> None:
        q = self._queue
        if q.full():
            q.get_nowait()  # a reader that fell behind loses the oldest
        q.put_nowait(event)

    async def events(self) -> AsyncIterator[CallDtmf | CallStop | ev.RealtimeEvent]:
        """DTMF digits, the caller's stop and every session event, in order, until the call ends."""
        q = self._queue
        while not (self._done.is_set() and q.empty()):
            getter = asyncio.ensure_future(q.get())
            ended = asyncio.ensure_future(self._done.wait())
            try:
                await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                yield getter.result()

    async def _caller_loop(self) -> None:
        reason = "caller gone"
        try:
            while (event := await self.caller.next_event()) is not None:
                if isinstance(event, CallStop):
                    self._emit(event)
                    reason = "caller hung up"
                    break
                if isinstance(event, CallDtmf):
                    self._emit(event)
                    if self.dtmf_as_text:
                        await self._keypad(event.digit)
        finally:
            if self._keys_timer is not None:
                self._keys_timer.cancel()
            await self._end(reason)

    async def _keypad(self, digit: str) -> None:
        """Digits go to the model as one user message: at ``#`` or after a pause, like an IVR reads them."""
        self._keys += digit
        if self._keys_timer is not None:
            self._keys_timer.cancel()
            self._keys_timer = None
        if digit == "#":
            await self._send_keys()
        else:
            self._keys_timer = asyncio.create_task(self._keys_after_pause())

    async def _keys_after_pause(self) -> None:
        await asyncio.sleep(DTMF_PAUSE_S)
        self._keys_timer = None
        await self._send_keys()

    async def _send_keys(self) -> None:
        keys, self._keys = self._keys, ""
        if keys and not self.session.closed:
            await self.session.send_message(f"[The caller typed on the keypad: {keys}]")

    async def _session_loop(self) -> None:
        try:
            async for event in self.session:
                self._emit(event)
        finally:
            await self._end("session ended")

    async def _end(self, reason: str) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.session.stop()
        await self.caller.close()
        self._done.set()

    async def hangup(self) -> None:
        """End the call: the session stops and the caller's stream closes."""
        await self._end("hung up")
        await self.wait()

    async def wait(self) -> None:
        """Until the call has ended (and its tasks with it)."""
        await self._done.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def bridge_call(
    caller: CallerTransport,
    agent: Agent,
    *,
    config: RunConfig | None = None,
    api_key: str | None = None,
    url: str | None = None,
    session_format: Literal["caller", "pcm16"] = "caller",
    dtmf_as_text: bool = False,
    greet: bool = False,
    chunk_ms: float = 20.0,
    session_options: dict[str, Any] | None = None,
) -> Call:
    """Start a session for ``agent`` on the caller's audio (``caller.start`` must be known) and return
    the live :class:`Call`. ``url``/``api_key`` choose the server as for ``realtime.start_session``;
    ``greet=True`` asks for a response at once, so the agent speaks first (as phone lines expect)."""
    start = caller.start
    cfg = session_config(start, config, session_format)
    fmt = cfg.model_settings.input_format
    codes = fmt.ga_type == start.encoding and fmt.sample_rate == start.sample_rate
    rate = fmt.sample_rate
    mic = RingBuffer(rate * MIC_SECONDS, overflow="drop_oldest")
    playback = RingBuffer(rate * PLAYBACK_SECONDS, overflow="drop_newest")
    session = Session(agent, cfg, api_key=api_key, url=url, **(session_options or {}))
    session.playback.use_ring_buffer(playback, audio_events=False, listener=caller, g711_codes=codes)
    # The caller's audio collects in the microphone ring while the session connects.
    caller.attach(
        mic=mic, mic_rate=rate, mic_codes=codes, playback=playback, playback_rate=rate, playback_codes=codes
    )
    try:
        await session.start()
        session.stream_audio_from(mic, chunk_ms=chunk_ms, g711_codes=codes)
        if greet:
            session.request_response()
            await session.flush()
    except BaseException:
        with contextlib.suppress(Exception):
            await session.stop()
        await caller.close()
        raise
    return Call(caller, session, dtmf_as_text=dtmf_as_text)
