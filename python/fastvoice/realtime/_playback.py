"""How much of the assistant's audio the listener has actually heard: the truth behind a truncation.

When the user barges in, the server must be told where to cut the assistant item
(``conversation.item.truncate``'s ``audio_end_ms``), or the model believes it said things nobody heard. Audio
arrives much faster than it plays, so "what was received" is the wrong answer. Three sources, best first:

1. a :class:`fastvoice.audio.RingBuffer` registered with :meth:`PlaybackTracker.use_ring_buffer`: every delta
   goes into it and its ``consumed`` counter (advanced by the audio callback that reads it) is exactly what
   reached the speaker; on interruption it is cleared, so playback stops at once. With
   ``audio_events=False`` the transport writes the deltas into it natively (no Python per chunk) and the
   accounting is read from the connection;
2. progress the application reports with :meth:`PlaybackTracker.played`;
3. otherwise a wall-clock estimate: time since the item's first delta, capped by the audio received.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from fastvoice._fastvoice import RingBuffer, alaw_decode, ulaw_decode
from fastvoice.realtime.config import AudioFormatInfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastvoice import transport

__all__ = ["PlaybackListener", "PlaybackTracker"]


class PlaybackListener(Protocol):
    """Where the ring's audio really plays when that is not the ring's reader (see ``use_ring_buffer``)."""

    @property
    def heard(self) -> int: ...

    def clear(self) -> None: ...


class PlaybackTracker:
    """Playback accounting for the current assistant audio item of one session (``session.playback``)."""

    __slots__ = (
        "_codes",
        "_conn",
        "_decode",
        "_fmt",
        "_listener",
        "_native",
        "_on_change",
        "_received",
        "_reported_bytes",
        "_ring",
        "_ring_start",
        "_t0",
        "content_index",
        "item_id",
        "response_id",
    )

    def __init__(self, fmt: AudioFormatInfo) -> None:
        self._fmt = fmt
        self._ring: RingBuffer | None = None
        self._decode = {"audio/pcmu": ulaw_decode, "audio/pcma": alaw_decode}.get(fmt.ga_type)
        self.item_id: str | None = None
        self.content_index = 0
        self.response_id: str | None = None
        self._received = 0
        self._reported_bytes: int | None = None
        self._t0 = 0.0
        self._ring_start = 0
        self._native = False
        self._listener: PlaybackListener | None = None
        self._codes = False
        # Set by the session: the connection whose native sink fills the ring, and a hook to (re)apply it.
        self._conn: transport.Connection | None = None
        self._on_change: Callable[[], None] | None = None

    # ---- application API

    def use_ring_buffer(
        self,
        ring: RingBuffer | None,
        *,
        audio_events: bool = True,
        listener: PlaybackListener | None = None,
        g711_codes: bool = False,
    ) -> None:
        """Route assistant audio into ``ring`` (PCM16 at the output format's rate; G.711 is decoded) and take
        its ``consumed`` count as the truth about playback. ``None`` stops doing so.

        ``audio_events=False`` moves the routing into the transport: deltas are decoded and written into the
        ring natively as they arrive and no ``RealtimeAudioEvent`` is emitted per chunk (the other events,
        ``RealtimeAudioEndEvent`` and interruption included, are unchanged), so steady playback costs
        Python nothing. ``session.audio_bytes_received`` is then counted natively (same meaning: decoded
        bytes of every valid delta); the per-chunk ``audio_received`` telemetry is not emitted.

        ``listener``, when the ring's reader is not the listener's ear (a phone line or a browser buffers
        what it is given): its ``heard`` is the listener's position in the ring's ``consumed`` numbering
        (how many of the samples read from the ring were actually heard), which replaces ``consumed`` in
        :attr:`played_ms` and truncation, and its ``clear()`` is called right after an interruption cut
        the ring, to drop what the listener's side still buffers. ``g711_codes=True`` (native mode, G.711
        output) stores the G.711 codes themselves, one per int16 slot, for a native reader that forwards
        them unchanged (a phone line of the same law)."""
        if ring is not None and not isinstance(ring, RingBuffer):
            raise TypeError(
                f"use_ring_buffer() takes a fastvoice.audio.RingBuffer, got {type(ring).__name__}"
            )
        self._ring = ring
        self._native = ring is not None and not audio_events
        self._listener = listener if ring is not None else None
        self._codes = bool(g711_codes) and self._native
        if ring is not None:
            self._ring_start = ring.written - ring.skipped
        if self._on_change is not None:
            self._on_change()

    @property
    def g711_codes(self) -> bool:
        """Whether the native sink stores G.711 codes instead of samples (``use_ring_buffer``)."""
        return self._codes

    @property
    def native(self) -> bool:
        """Whether the transport writes the audio into the ring itself (``audio_events=False``)."""
        return self._native

    def _native_state(self) -> tuple[str, int, str, int, int] | None:
        conn = self._conn
        return conn.audio_output_state() if conn is not None and self._native else None

    @property
    def received_bytes(self) -> int:
        """Bytes (in the output format) of the current item received so far."""
        if self._native:
            st = self._native_state()
            return st[3] if st is not None and st[0] == self.item_id else 0
        return self._received

    @property
    def ring_buffer(self) -> RingBuffer | None:
        return self._ring

    def played(
        self, item_id: str, content_index: int = 0, *, n_bytes: int | None = None, ms: float | None = None
    ) -> None:
        """Report that ``n_bytes`` (in the output format) or ``ms`` more of ``item_id`` were played.

        Reports for an item other than the current one are ignored (it already finished or was cut).
        """
        if (n_bytes is None) == (ms is None):
            raise ValueError("played() takes exactly one of n_bytes= or ms=")
        if n_bytes is not None and (isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0):
            raise ValueError(f"n_bytes must be a non-negative int, got {n_bytes!r}")
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int | float) or not ms >= 0):
            raise ValueError(f"ms must be a non-negative number, got {ms!r}")
        if item_id != self.item_id or content_index != self.content_index:
            return
        add = n_bytes if n_bytes is not None else round(ms * self._bytes_per_ms()) if ms is not None else 0
        self._reported_bytes = (self._reported_bytes or 0) + add

    @property
    def received_ms(self) -> float:
        """Milliseconds of the current item received so far."""
        return self._fmt.duration_ms(self.received_bytes)

    @property
    def played_ms(self) -> float:
        """Best knowledge of how much of the current item was heard (never more than was received)."""
        if self.item_id is None:
            return 0.0
        received = self.received_ms
        ring = self._ring
        if ring is not None:
            start = self._ring_start
            if self._native:
                st = self._native_state()
                start = st[4] if st is not None else self._position(ring)
            samples = max(0, self._position(ring) - start)
            return min(received, samples * 1000.0 / self._fmt.sample_rate)
        if self._reported_bytes is not None:
            return min(received, self._fmt.duration_ms(self._reported_bytes))
        return min(received, (time.monotonic() - self._t0) * 1000.0)

    @property
    def source(self) -> str:
        """Where :attr:`played_ms` comes from: ``"ring_buffer"``, ``"reported"`` or ``"wall_clock"``."""
        if self._ring is not None:
            return "ring_buffer"
        return "reported" if self._reported_bytes is not None else "wall_clock"

    def is_playing(self) -> bool:
        """Whether some received audio of the current item has not been heard yet."""
        return self.item_id is not None and self.played_ms < self.received_ms

    # ---- session side

    def _bytes_per_ms(self) -> float:
        return self._fmt.sample_rate * self._fmt.bytes_per_sample / 1000.0

    def on_audio(self, item_id: str, content_index: int, response_id: str | None, audio: bytes) -> None:
        """A delta arrived (called by the session for every delta it delivers)."""
        if item_id != self.item_id or content_index != self.content_index:
            self.item_id = item_id
            self.content_index = content_index
            self.response_id = response_id
            self._received = 0
            self._reported_bytes = None
            self._t0 = time.monotonic()
            if self._ring is not None and not self._native:
                self._ring_start = self._ring.written - self._ring.skipped
        self._received += len(audio)
        ring = self._ring
        if ring is not None and audio:  # native mode: only a delta the transport could not decode has audio
            decode = self._decode
            ring.write(decode(audio) if decode is not None else audio)

    def cut(self) -> tuple[str, int, int] | None:
        """End the current item now: returns ``(item_id, content_index, audio_end_ms)`` if some of it was not
        heard yet (and clears the ring buffer), else ``None``. Either way the item is no longer current."""
        conn, ring = self._conn, self._ring
        if self._native and conn is not None and ring is not None:
            # One native call clears the ring and drops the rest of the response atomically, so no delta
            # arriving meanwhile can still be heard (even one whose item notice has not reached us yet).
            st = conn.cut_audio_output(self.response_id)
            self.reset()
            if st is None:
                return None
            received = self._fmt.duration_ms(st[3])
            played = min(received, max(0, self._position(ring) - st[4]) * 1000.0 / self._fmt.sample_rate)
            if self._listener is not None:
                self._listener.clear()  # after reading where it was: the clear forgets that
            return (st[0], st[1], int(played)) if played < received else None
        if self.item_id is None:
            return None
        played = self.played_ms
        result = None
        if played < self.received_ms:
            result = (self.item_id, self.content_index, int(played))
        if ring is not None:
            ring.clear()
        if self._listener is not None:
            self._listener.clear()
        self.reset()
        return result

    def _position(self, ring: RingBuffer) -> int:
        """The listener's position in the ring's ``consumed`` numbering."""
        listener = self._listener
        return ring.consumed if listener is None else min(ring.consumed, listener.heard)

    def reset(self) -> None:
        self.item_id = None
        self.response_id = None
        self._received = 0
        self._reported_bytes = None
        if self._native and self._conn is not None:
            self._conn.reset_audio_output()
