"""Turn detection for streamed input: `make_turn_detector` picks the engine; this module has the
energy one, on the native VAD (`fastvoice.audio.VAD`), and `_silero` the neural one.

The VAD finds speech boundaries as sample offsets; this module keeps just enough of the
stream to cut the turns out at those offsets: the pre-roll (prefix padding plus the frames
of a speech run that is not yet long enough) while idle, and the turn itself while one is
in progress. Everything per sample runs in Rust; Python only slices bytes at the events.
"""

from __future__ import annotations

import logging
from typing import Protocol

from fastvoice._fastvoice import VAD
from fastvoice.voice.config import TurnDetection

_log = logging.getLogger("fastvoice")


class TurnDetector(Protocol):
    """What `EnergyTurnDetector` and `SileroTurnDetector` both are."""

    @property
    def in_turn(self) -> bool: ...
    def push(self, pcm16: bytes) -> list[bytes]: ...
    def flush(self) -> bytes | None: ...


def make_turn_detector(sample_rate: int, settings: TurnDetection | None = None) -> TurnDetector:
    """The turn detector `settings.engine` names: `"silero"` (raises `ProviderUnavailableError`
    without onnxruntime), `"energy"`, or `"auto"`: Silero when onnxruntime imports, else energy."""
    s = settings or TurnDetection()
    if s.engine not in ("auto", "silero", "energy"):
        raise ValueError(f"TurnDetection.engine must be 'auto', 'silero' or 'energy', got {s.engine!r}")
    if s.engine != "energy":
        from fastvoice.voice import _silero

        if _silero.available():
            return _silero.SileroTurnDetector(sample_rate, s)
        if s.engine == "silero":
            raise _silero.SileroUnavailableError(
                f"TurnDetection(engine='silero') needs onnxruntime; {_silero.INSTALL_HINT}"
            )
        _log.debug("fastvoice voice: onnxruntime is not installed, turn detection uses the energy VAD")
    return EnergyTurnDetector(sample_rate, s)


def has_speech(pcm16: bytes, sample_rate: int, threshold_db: float = -50.0, min_ms: int = 60) -> bool:
    """True when the VAD finds at least `min_ms` of speech louder than `threshold_db`.

    Recognisers hallucinate words in silence (PocketSphinx hears "being" in digital zero),
    so silence and steady noise are caught here before they reach one.
    """
    if not pcm16:
        return False
    vad = VAD(
        sample_rate, threshold_db=threshold_db, min_speech_ms=min_ms, hangover_ms=100, prefix_padding_ms=0
    )
    return bool(vad.push(pcm16)) or vad.in_speech


class EnergyTurnDetector:
    """Cuts a PCM16 mono stream into turns: `push(chunk)` returns the turns completed by it,
    `flush()` the turn in progress at the end of the stream.

    (The name predates the native VAD; the detector now also tracks the noise floor and the
    zero-crossing rate, see `fastvoice.audio.VAD`.)
    """

    def __init__(self, sample_rate: int, settings: TurnDetection | None = None) -> None:
        s = settings or TurnDetection()
        if s.frame_ms <= 0 or s.min_speech_ms <= 0 or s.silence_ms <= 0 or s.prefix_ms < 0:
            raise ValueError(f"invalid turn detection settings: {s}")
        try:
            self._vad = VAD(
                sample_rate,
                frame_ms=s.frame_ms,
                threshold_db=s.threshold_db,
                min_speech_ms=s.min_speech_ms,
                hangover_ms=s.silence_ms,
                prefix_padding_ms=s.prefix_ms,
            )
        except ValueError as exc:
            raise ValueError(f"invalid turn detection settings: {exc}") from exc
        # Keep while idle: the pre-roll, the speech run that would start a turn, one frame slack.
        frame = self._vad.frame_samples
        self._keep = 2 * frame * (s.prefix_ms // s.frame_ms + max(1, s.min_speech_ms // s.frame_ms) + 1)
        self._buf = bytearray()
        self._base = 0  # stream offset (bytes) of self._buf[0]
        self._start: int | None = None  # stream offset (bytes) of the turn in progress

    @property
    def in_turn(self) -> bool:
        return self._start is not None

    def push(self, pcm16: bytes) -> list[bytes]:
        self._buf += pcm16
        done: list[bytes] = []
        for ev in self._vad.push(pcm16):
            if ev.kind == "start":
                self._start = 2 * ev.padded_sample
            elif self._start is not None:
                end = 2 * ev.padded_sample
                done.append(bytes(self._buf[self._start - self._base : end - self._base]))
                self._drop_before(end)
                self._start = None
        if self._start is None and len(self._buf) > self._keep:
            self._drop_before(self._base + len(self._buf) - self._keep)
        return done

    def _drop_before(self, offset: int) -> None:
        # Deleting from the front of a bytearray is O(1) amortised in CPython.
        del self._buf[: offset - self._base]
        self._base = offset

    def flush(self) -> bytes | None:
        """The turn in progress (with any partial frame), or None when idle."""
        self._vad.flush()
        start, self._start = self._start, None
        turn = bytes(self._buf[start - self._base :]) if start is not None else None
        self._buf = bytearray()
        self._base = 0
        return turn
