"""Neural turn detection: the Silero VAD (v6, ONNX, MIT) on onnxruntime.

The model file is vendored in `fastvoice/data/silero_vad.onnx` (source and licence in
`SILERO_VAD_LICENSE.txt` next to it) and checked against a pinned sha256 before onnxruntime
sees it. The model takes 32 ms windows (512 samples at 16 kHz, 256 at 8 kHz) preceded by the
last 64 (32) samples of the previous window, carries an LSTM state between windows and returns
one speech probability per window. Other input rates are converted to 16 kHz with the native
streaming `Resampler`; the turns are still cut from the caller's own bytes.

One `InferenceSession` serves the whole process (`sess.run` is thread-safe); each stream keeps
its own recurrent state, context and buffers in its `SileroVAD` / `SileroTurnDetector`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fastvoice import audio
from fastvoice.voice.config import TurnDetection
from fastvoice.voice.events import ProviderUnavailableError

MODEL_FILE = "silero_vad.onnx"
#: The vendored file: silero-vad 6.2.3's `silero_vad/data/silero_vad.onnx` from PyPI.
MODEL_SIZE = 2327524
MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
MODEL_SOURCE = "silero-vad 6.2.3 (PyPI), silero_vad/data/silero_vad.onnx"

INSTALL_HINT = "install onnxruntime with: pip install 'fastvoice[local]'"
#: Rates the model takes as they are; any other rate is resampled to 16 kHz.
NATIVE_RATES = (8000, 16000)
MIN_RATE, MAX_RATE = 8000, 384000
#: The reference implementation's hysteresis: speech ends below `threshold - NEG_OFFSET`.
NEG_OFFSET = 0.15


class SileroUnavailableError(ProviderUnavailableError):
    """The Silero VAD cannot run: onnxruntime is not installed, or the model cannot be loaded."""


class SileroModelMismatchError(SileroUnavailableError):
    """The model file differs from the pinned one (corrupt, truncated or replaced). `path` is the
    file, `expected` and `actual` its pinned and found sha256."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"the Silero VAD model {path} does not match the pinned one ({MODEL_SOURCE}): "
            f"expected sha256 {expected}, found {actual}; reinstall fastvoice"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


@cache
def available() -> bool:
    """Whether onnxruntime imports (the model itself ships with fastvoice)."""
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def model_path() -> Path:
    return Path(str(importlib.resources.files("fastvoice") / "data" / MODEL_FILE))


def load_model(path: Path | None = None, sha256: str = MODEL_SHA256) -> Any:
    """A new onnxruntime session on the model at `path` (default: the vendored one), after
    checking its sha256. Raises `SileroUnavailableError` / `SileroModelMismatchError`."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise SileroUnavailableError(f"the Silero VAD needs onnxruntime ({exc}); {INSTALL_HINT}") from None
    path = path or model_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SileroUnavailableError(
            f"the Silero VAD model {path} cannot be read ({exc.strerror or exc}); reinstall fastvoice"
        ) from None
    # Hash the very bytes handed to onnxruntime, so the file cannot change in between.
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise SileroModelMismatchError(path, sha256, found)
    opts = ort.SessionOptions()
    # One window is a few hundred microseconds of work: threads would cost more than they save,
    # and every stream of a server shares this one session.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise SileroUnavailableError(f"onnxruntime could not load the Silero VAD model: {exc}") from exc


_session_lock = threading.Lock()
_session: Any = None


def shared_session() -> Any:
    """The process-wide session on the vendored model, loaded on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = load_model()
        return _session


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate must be an int in Hz, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(
            f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz for the Silero VAD, not {sample_rate}"
        )
    return sample_rate


class SileroVAD:
    """Speech probabilities of a PCM16 mono stream at `sample_rate`, one per 32 ms window.

    `process(pcm16)` returns the probabilities of the windows completed by the chunk (whatever
    the chunking, the same windows and values). Window `k` covers model-rate samples
    `[k * window, (k + 1) * window)`, which is input time `k * window / model_rate` onwards: the
    resampler's delay is already removed. `input_sample(j)` maps a model-rate offset to the input.
    """

    def __init__(self, sample_rate: int, session: Any = None) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self.model_rate = sample_rate if sample_rate in NATIVE_RATES else 16000
        self.window = 512 if self.model_rate == 16000 else 256
        self._ctx = 64 if self.model_rate == 16000 else 32
        self._sess = session if session is not None else shared_session()
        self._resampler = (
            audio.Resampler(sample_rate, self.model_rate) if sample_rate != self.model_rate else None
        )
        self.reset()

    def reset(self) -> None:
        """Forget the stream: state, context, partial window and resampler."""
        if self._resampler is not None:
            self._resampler.reset()
        # The resampler's output lags the input by its filter delay: drop that many leading
        # samples so model-rate sample j is input time j / model_rate.
        self._skip = round(self._resampler.delay_ms * self.model_rate / 1000) if self._resampler else 0
        self._pending = np.empty(0, np.float32)
        self._input = np.zeros((1, self._ctx + self.window), np.float32)
        self._state = np.zeros((2, 1, 128), np.float32)
        self._sr = np.array(self.model_rate, np.int64)
        self.windows = 0  # windows processed since the start of the stream

    def input_sample(self, model_sample: int) -> int:
        """The input-rate sample offset at model-rate offset `model_sample` (rounded)."""
        return (model_sample * self.sample_rate + self.model_rate // 2) // self.model_rate

    def process(self, pcm16: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
        x = audio.from_pcm16(pcm16, "float32")
        if self._resampler is not None:
            x = np.asarray(self._resampler.process(x), np.float32)
            if self._skip:
                dropped = min(self._skip, len(x))
                self._skip -= dropped
                x = x[dropped:]
        if len(self._pending):
            x = np.concatenate((self._pending, x))
        n = len(x) // self.window
        probs = np.empty(n, np.float32)
        inp, ctx, w = self._input, self._ctx, self.window
        feeds: dict[str, Any] = {"input": inp, "state": self._state, "sr": self._sr}
        for k in range(n):
            inp[0, ctx:] = x[k * w : (k + 1) * w]
            out, feeds["state"] = self._sess.run(None, feeds)
            probs[k] = out[0, 0]
            inp[0, :ctx] = inp[0, -ctx:]  # the model's context: the tail of this window
        self._state = feeds["state"]
        self._pending = x[n * w :].copy()
        self.windows += n
        return probs


class SileroTurnDetector:
    """Cuts a PCM16 mono stream into turns with the Silero VAD; a drop-in for
    `EnergyTurnDetector`: `push(chunk)` returns the turns completed by it, `flush()` the turn
    in progress at the end of the stream.

    A turn starts once `min_speech_ms` of consecutive windows have a speech probability of at
    least `settings.threshold`, and ends `silence_ms` after the probability first fell below
    `threshold - 0.15` (a window back at `threshold` or above cancels the countdown). Each turn
    holds `prefix_ms` of audio before the window preceding the first speech window (never
    reaching back into the previous turn) and the `silence_ms` after the speech, as the energy
    detector's turns hold their pre-roll and hangover. `threshold_db` and `frame_ms`
    are the energy detector's and are ignored here.
    """

    def __init__(self, sample_rate: int, settings: TurnDetection | None = None, session: Any = None) -> None:
        s = settings or TurnDetection()
        if s.min_speech_ms <= 0 or s.silence_ms <= 0 or s.prefix_ms < 0 or not 0.0 < s.threshold < 1.0:
            raise ValueError(f"invalid turn detection settings: {s}")
        self._vad = SileroVAD(sample_rate, session)
        mr, w = self._vad.model_rate, self._vad.window
        self._threshold = s.threshold
        self._neg = max(s.threshold - NEG_OFFSET, 0.01)
        self._min_windows = max(1, -(-s.min_speech_ms * mr // (1000 * w)))  # ceil
        self._silence = s.silence_ms * mr // 1000  # model-rate samples
        self._prefix = s.prefix_ms * sample_rate // 1000  # input samples
        #: When a list, each completed turn appends its speech as (start, end) input samples,
        #: without pre-roll and trailing silence (off by default: a live stream would grow it).
        self.spans: list[tuple[int, int]] | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset (bytes) of self._buf[0]
        self._start: int | None = None  # stream offset (bytes) of the turn in progress
        self._floor = 0  # stream offset (bytes) of the last cut: no pre-roll reaches before it
        self._run = 0  # windows in the current run at or above the threshold (while idle)
        self._quiet_from: int | None = None  # model sample where the probability fell (in a turn)
        self._speech_at = 0  # model sample where the speech of the turn in progress starts

    @property
    def in_turn(self) -> bool:
        return self._start is not None

    @property
    def sample_rate(self) -> int:
        return self._vad.sample_rate

    def push(self, pcm16: bytes) -> list[bytes]:
        self._buf += pcm16
        first = self._vad.windows
        probs = self._vad.process(pcm16)
        w = self._vad.window
        done: list[bytes] = []
        for i, p in enumerate(probs.tolist()):
            k = first + i
            if self._start is None:
                self._run = self._run + 1 if p >= self._threshold else 0
                if self._run >= self._min_windows:
                    # The pre-roll is counted from the window before the first speech one: a
                    # window scores by its whole 32 ms, so one whose last few ms hold the onset
                    # still scores low.
                    self._speech_at = (k + 1 - self._run) * w
                    speech = 2 * self._vad.input_sample(max(k - self._run, 0) * w)
                    self._start = max(speech - 2 * self._prefix, self._floor, self._base)
                    self._run = 0
                    self._quiet_from = None
            elif p >= self._threshold:
                self._quiet_from = None
            elif p < self._neg or self._quiet_from is not None:
                if self._quiet_from is None:
                    self._quiet_from = k * w
                if (k + 1) * w - self._quiet_from >= self._silence:
                    end = 2 * self._vad.input_sample(self._quiet_from + self._silence)
                    end = min(end, self._base + len(self._buf))
                    done.append(bytes(self._buf[self._start - self._base : end - self._base]))
                    if self.spans is not None:
                        at = self._vad.input_sample
                        self.spans.append((at(self._speech_at), at(self._quiet_from)))
                    self._drop_before(end)
                    self._floor = end
                    self._start = None
                    self._quiet_from = None
        if self._start is None:
            # While idle keep the pre-roll before the earliest window that may still start a turn.
            candidate = (self._vad.windows - self._run - 2) * w
            keep = max(2 * (self._vad.input_sample(max(candidate, 0)) - self._prefix), self._floor)
            if keep > self._base:
                self._drop_before(keep)
        return done

    def _drop_before(self, offset: int) -> None:
        del self._buf[: offset - self._base]
        self._base = offset

    def flush(self) -> bytes | None:
        """The turn in progress (up to the end of the input), or None when idle. The detector is
        then reset for a new stream."""
        start = self._start
        turn = bytes(self._buf[start - self._base :]) if start is not None else None
        self._vad.reset()
        self._reset_stream()
        return turn


def speech_segments(
    pcm16: bytes, sample_rate: int, settings: TurnDetection | None = None
) -> list[tuple[float, float]]:
    """(start, end) seconds of the speech the detector finds in a whole clip, without the
    pre-roll and the trailing silence of the turns (for measurements and tests). A turn still
    in progress at the end of the clip ends there."""
    det = SileroTurnDetector(sample_rate, settings)
    det.spans = []
    det.push(pcm16)
    spans = [(a / sample_rate, b / sample_rate) for a, b in det.spans]
    if det.in_turn:
        spans.append((det._vad.input_sample(det._speech_at) / sample_rate, len(pcm16) / 2 / sample_rate))
    return spans
