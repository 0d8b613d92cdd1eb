"""The input and output audio side of a :class:`~fastvoice.realtime.session.Session` (a mixin): sending
microphone audio from Python or natively from a ring, committing it, installing the native playback sink, and
the counters (received audio, audio lost across reconnects).

Input audio is kept in the session's unacknowledged log (:mod:`~fastvoice.realtime._inflight`) until the
server commits it, so a reconnect can send the new server session what the old one never committed; the
native pump keeps what it sends in the same way (``take_audio_input_retained``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastvoice import telemetry, transport
from fastvoice._fastvoice import RingBuffer, to_pcm16
from fastvoice.realtime import _protocol as P
from fastvoice.realtime._audio_in import AudioInput, Payload, g711_append_text

if TYPE_CHECKING:
    from fastvoice.realtime._inflight import Unacked
    from fastvoice.realtime._playback import PlaybackTracker
    from fastvoice.realtime.config import AudioFormatInfo, ReconnectConfig

__all__ = ["SessionAudio", "SessionClosedError"]


class SessionClosedError(RuntimeError):
    """The session was stopped (or lost its connection for good); it cannot send any more."""


class SessionAudio:
    """Mixed into :class:`~fastvoice.realtime.session.Session`; the attributes below are the session's."""

    session_id: str
    reconnect_config: ReconnectConfig
    playback: PlaybackTracker
    audio_bytes_sent: int
    _conn: transport.Connection | None
    _reconnecting: bool
    _in_fmt: AudioFormatInfo
    _out_fmt: AudioFormatInfo
    _audio_in: AudioInput
    _unacked: Unacked
    _mic: tuple[RingBuffer, float, bool, bool] | None
    _meta: dict[str, Any]
    _audio_rx: int
    _native_rx: int
    _rx_conn: transport.Connection | None

    def _check_open(self) -> None:
        raise NotImplementedError

    async def _send_json(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    @property
    def dropped_audio_bytes(self) -> int:
        """Input audio lost across reconnects: bytes the server had not committed when the connection
        died, or that were sent while reconnecting, that did not fit
        ``ReconnectConfig.max_buffered_audio_bytes`` (the rest is re-sent; see
        :mod:`~fastvoice.realtime._inflight`)."""
        return self._unacked.dropped_bytes

    @property
    def audio_bytes_received(self) -> int:
        """Assistant audio received (decoded bytes of every valid delta, in the output format), whether the
        deltas became ``RealtimeAudioEvent`` or were written into a ring natively (``audio_events=False``)."""
        conn = self._rx_conn
        return self._audio_rx + self._native_rx + (conn.audio_output_received if conn is not None else 0)

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

    async def _send_audio_payload(self, payload: Payload, *, count: bool = True) -> None:
        """Send input audio; it is kept (bounded) until the server commits it, so a reconnect re-sends what
        the old server never committed. ``count=False``: a re-send of audio already counted as sent."""
        n = self._audio_in.wire_bytes(payload)
        if n == 0:
            return
        unacked = self._unacked
        # A copy as wire bytes: the caller may reuse its array (e.g. a sounddevice callback buffer).
        chunk = payload if isinstance(payload, bytes) else to_pcm16(payload) if unacked.enabled else payload
        conn = self._conn
        if conn is None or self._reconnecting:
            unacked.add_audio(bytes(chunk), sent=not count)
            return
        try:
            if isinstance(chunk, bytes) and self._in_fmt.bytes_per_sample == 1:
                await conn.send_text(g711_append_text(chunk))
            else:
                await conn.send_audio(chunk)
        except transport.TransportError:
            if not self.reconnect_config.enabled:
                raise SessionClosedError(f"session {self.session_id} lost its connection") from None
            unacked.add_audio(bytes(chunk), sent=not count)
            return
        if isinstance(chunk, bytes):
            unacked.add_audio(chunk, sent=True)
        if not count:
            return
        self.audio_bytes_sent += n
        if telemetry._table.get(telemetry.REALTIME_AUDIO_SENT):  # no dicts per chunk unless someone listens
            telemetry.execute(telemetry.REALTIME_AUDIO_SENT, {"bytes": n}, self._meta)

    def stream_audio_from(
        self,
        ring: RingBuffer | None,
        *,
        chunk_ms: float = 20.0,
        pace: bool = False,
        g711_codes: bool = False,
    ) -> None:
        """Send microphone audio from ``ring`` natively: every ``chunk_ms`` the connection's own task sends
        what the ring holds as ``input_audio_buffer.append`` frames, so a live source (e.g. a sounddevice
        callback calling ``ring.write(indata)``) costs no Python per chunk. The ring must hold samples at the
        session's input rate (int16 or float32; G.711 sessions are encoded natively). ``pace=True`` sends at
        most real time, for pre-recorded audio. ``None`` stops. Survives reconnects (the ring keeps what
        arrives during an outage, under its own overflow policy). ``g711_codes=True`` (G.711 input): the
        ring holds G.711 codes, one per int16 slot, sent unchanged (a phone line of the same law)."""
        self._check_open()
        if ring is not None and not isinstance(ring, RingBuffer):
            raise TypeError(
                f"stream_audio_from() takes a fastvoice.audio.RingBuffer, got {type(ring).__name__}"
            )
        if not 1.0 <= chunk_ms <= 1000.0:
            raise ValueError(f"chunk_ms must be within 1..1000, got {chunk_ms}")
        self._mic = None if ring is None else (ring, float(chunk_ms), bool(pace), bool(g711_codes))
        if self._conn is not None and not self._reconnecting:
            self._apply_input(self._conn)

    def _attach_media(self, conn: transport.Connection) -> None:
        """Install the native output sink and input pump on a (re)opened connection, after session.update."""
        if self._rx_conn is not None and self._rx_conn is not conn:
            self._native_rx += self._rx_conn.audio_output_received
        self._rx_conn = conn
        self._apply_output(conn)
        self._apply_input(conn)

    def _apply_output(self, conn: transport.Connection | None = None) -> None:
        conn = conn or self._conn
        pb = self.playback
        pb._conn = conn
        if conn is not None:
            conn.set_audio_output(
                pb.ring_buffer if pb.native else None, self._out_fmt.ga_type, codes=pb.g711_codes
            )

    def _apply_input(self, conn: transport.Connection) -> None:
        if self._mic is None:
            conn.set_audio_input(None)
            return
        ring, chunk_ms, pace, codes = self._mic
        rate = self._in_fmt.sample_rate
        # The pump keeps what it sent (same budget) until the session takes it: at a commit, at a server
        # commit, or when the connection dies (then it is re-sent on the next one).
        keep = self._unacked.limit if self._unacked.enabled else None
        conn.set_audio_input(
            ring,
            encoding=self._in_fmt.ga_type,
            sample_rate=rate,
            chunk_ms=chunk_ms,
            pace=pace,
            retain_bytes=keep,
            codes=codes,
        )

    def _take_pump_audio(self, conn: transport.Connection | None, *, keep: bool = True) -> None:
        """Move what the native pump sent (and did not fit its retention) into the unacknowledged log."""
        if conn is None or (self._mic is None and not conn.audio_input_sent):
            return
        audio, evicted = conn.take_audio_input_retained()
        if keep:
            self._unacked.add_audio(audio, sent=True, evicted=evicted)

    async def commit_audio(self) -> None:
        """Commit the input audio buffer (push-to-talk end of turn); resampler tails are sent first."""
        self._check_open()
        if self._mic is not None and self._conn is not None and not self._reconnecting:
            self._conn.flush_audio_input()  # what the microphone ring holds goes before the commit
            self._take_pump_audio(self._conn)  # ... and is what this commit acknowledges
        for tail in self._audio_in.flush():
            await self._send_audio_payload(tail)
        await self._send_json(P.input_audio_buffer_commit())
