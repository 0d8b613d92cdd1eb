"""Energy-based speech detection in Python.

PLACEHOLDER: to be replaced by the native VAD of the Rust core (issue 5, "turn detection for
streamed input from a native VAD"). It is deliberately simple: frame RMS in dBFS against a
fixed threshold, with a minimum speech run to start a turn and a silence hangover to end it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from fastvoice.voice.config import TurnDetection


def frame_levels_db(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of each whole `frame`-sample frame of int16 `samples`."""
    n = len(samples) // frame
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    x = samples[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    power = np.mean(x * x, axis=1)
    return np.asarray(10.0 * np.log10(power + 1e-12))


def has_speech(pcm16: bytes, sample_rate: int, threshold_db: float = -50.0, min_ms: int = 60) -> bool:
    """True when at least `min_ms` of 20 ms frames are louder than `threshold_db`.

    Recognisers hallucinate words in silence (PocketSphinx hears "being" in digital zero),
    so silence is caught here before it reaches one.
    """
    frame = max(1, sample_rate // 50)
    levels = frame_levels_db(np.frombuffer(pcm16, dtype="<i2"), frame)
    return int(np.count_nonzero(levels > threshold_db)) * 20 >= min_ms


class EnergyTurnDetector:
    """Cuts a PCM16 mono stream into turns: `push(chunk)` returns the turns completed by it,
    `flush()` the turn in progress at the end of the stream."""

    def __init__(self, sample_rate: int, settings: TurnDetection | None = None) -> None:
        s = settings or TurnDetection()
        if s.frame_ms <= 0 or s.min_speech_ms <= 0 or s.silence_ms <= 0 or s.prefix_ms < 0:
            raise ValueError(f"invalid turn detection settings: {s}")
        self._frame = max(1, sample_rate * s.frame_ms // 1000)
        self._threshold = s.threshold_db
        self._min_speech = max(1, s.min_speech_ms // s.frame_ms)
        self._hangover = max(1, s.silence_ms // s.frame_ms)
        # Idle history: the pre-roll plus the frames of a speech run not yet long enough.
        self._history: deque[bytes] = deque(maxlen=s.prefix_ms // s.frame_ms + self._min_speech)
        self._pending = b""
        self._turn: list[bytes] | None = None
        self._run = 0  # consecutive loud frames while idle / quiet frames while in a turn

    @property
    def in_turn(self) -> bool:
        return self._turn is not None

    def push(self, pcm16: bytes) -> list[bytes]:
        data = self._pending + pcm16 if self._pending else pcm16
        step = self._frame * 2
        whole = len(data) // step * step
        self._pending = data[whole:]
        levels = frame_levels_db(np.frombuffer(data[:whole], dtype="<i2"), self._frame)
        done: list[bytes] = []
        for i, level in enumerate(levels):
            frame = data[i * step : (i + 1) * step]
            loud = level > self._threshold
            if self._turn is None:
                self._history.append(frame)
                self._run = self._run + 1 if loud else 0
                if self._run >= self._min_speech:
                    self._turn = list(self._history)
                    self._history.clear()
                    self._run = 0
            else:
                self._turn.append(frame)
                self._run = 0 if loud else self._run + 1
                if self._run >= self._hangover:
                    done.append(b"".join(self._turn))
                    self._turn = None
                    self._run = 0
        return done

    def flush(self) -> bytes | None:
        """The turn in progress (with any partial frame), or None when idle."""
        turn, self._turn = self._turn, None
        tail, self._pending = self._pending, b""
        self._history.clear()
        self._run = 0
        return b"".join(turn) + tail if turn is not None else None
