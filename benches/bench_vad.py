"""VAD benchmarks: the native `fastvoice.audio.VAD` next to the Python energy detector it
replaced (numpy, the placeholder that was on main), WebRTC's VAD (`webrtcvad`, C, when
installed) and the Silero VAD turn detector (`fastvoice.voice._silero`, onnxruntime), on the same audio.

- `vad-stream-20ms`: a 60 s conversation-like stream (the two-turn recording of tests/data, repeated)
  fed in 20 ms chunks, as live capture would: per-chunk cost including the Python call.
- `vad-file`: the same 60 s handed over at once (native only: one call; the others must loop
  over frames anyway, so their figure is the streaming one).
- `vad-agreement`: each detector's speech/non-speech verdict per 20 ms frame of one repetition
  against the reference segments of tests/data/README (speech 0.35-1.02 s and 2.59-4.61 s), in
  `extra_info["agreement_pct"]`: the native VAD's and Silero's speech spans (no padding, no
  hangover), webrtcvad's raw per-frame verdicts (it has no segmenter).

Each benchmark asserts what it detected (two utterances per repetition of the recording), so
it cannot rot; in the normal test run each runs once.
"""

from __future__ import annotations

import functools
import wave

import numpy as np
import pytest
from _data import data_path
from fastvoice.audio import VAD

RATE = 16000
FRAME = RATE // 50  # 20 ms
REPEATS = 11  # 11 x 5.36 s ~ 59 s


@functools.cache
def _stream() -> bytes:
    """The recording repeated to ~59 s, read on first use: a module-level read would turn any failure
    into a collection error that stops the whole run."""
    with wave.open(str(data_path("two_turns_16k.wav"))) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
        one = w.readframes(w.getnframes())
    one += b"\x00\x00" * (len(one) // 2 % FRAME and FRAME - len(one) // 2 % FRAME)  # whole frames
    return one * REPEATS


@functools.cache
def _chunks() -> tuple[bytes, ...]:
    stream = _stream()
    return tuple(stream[i : i + 2 * FRAME] for i in range(0, len(stream), 2 * FRAME))


EXPECTED = 2 * REPEATS  # utterances


def native_stream(chunks: tuple[bytes, ...]) -> int:
    vad = VAD(RATE, hangover_ms=500)
    starts = 0
    for chunk in chunks:
        for event in vad.push(chunk):
            starts += event.kind == "start"
    return starts


def native_file(stream: bytes) -> int:
    vad = VAD(RATE, hangover_ms=500)
    return sum(e.kind == "start" for e in vad.push(stream))


class PythonEnergyVAD:
    """The numpy placeholder that `fastvoice.voice._vad` had before the native VAD: frame RMS
    in dBFS against a fixed threshold, minimum speech run, hangover (reduced to the decisions)."""

    def __init__(self, threshold_db: float = -45.0, min_frames: int = 5, hangover: int = 25) -> None:
        self.threshold, self.min_frames, self.hangover = threshold_db, min_frames, hangover
        self.pending = b""
        self.in_speech = False
        self.run = 0

    def push(self, pcm16: bytes) -> int:
        data = self.pending + pcm16 if self.pending else pcm16
        whole = len(data) // (2 * FRAME) * (2 * FRAME)
        self.pending = data[whole:]
        n = whole // (2 * FRAME)
        if n == 0:
            return 0
        x = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64).reshape(n, FRAME) / 32768.0
        levels = 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-12)
        starts = 0
        for level in levels:
            loud = level > self.threshold
            if not self.in_speech:
                self.run = self.run + 1 if loud else 0
                if self.run >= self.min_frames:
                    self.in_speech, self.run, starts = True, 0, starts + 1
            else:
                self.run = 0 if loud else self.run + 1
                if self.run >= self.hangover:
                    self.in_speech, self.run = False, 0
        return starts


def python_stream(chunks: tuple[bytes, ...]) -> int:
    vad = PythonEnergyVAD()
    return sum(vad.push(chunk) for chunk in chunks)


def webrtc_stream(chunks: tuple[bytes, ...]) -> int:
    import webrtcvad  # type: ignore[import-untyped, import-not-found, unused-ignore]

    vad = webrtcvad.Vad(2)
    starts = run = 0
    in_speech = False
    for chunk in chunks:  # the same decision logic as above, on WebRTC's per-frame verdicts
        speech = vad.is_speech(chunk, RATE)
        if not in_speech:
            run = run + 1 if speech else 0
            if run >= 5:
                in_speech, run, starts = True, 0, starts + 1
        else:
            run = 0 if speech else run + 1
            if run >= 25:
                in_speech, run = False, 0
    return starts


def silero_stream(chunks: tuple[bytes, ...]) -> int:
    from fastvoice.voice._silero import SileroTurnDetector
    from fastvoice.voice.config import TurnDetection

    det = SileroTurnDetector(RATE, TurnDetection(silence_ms=500))  # the others' 500 ms hangover
    return sum(len(det.push(chunk)) for chunk in chunks) + (det.flush() is not None)


def _bench(benchmark, fn, group: str, name: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = group
    benchmark.extra_info.update(
        implementation=name,
        audio_s=round(len(_stream()) / 2 / RATE, 2),
        chunk_ms=20 if "stream" in group else None,
        chunks=len(_chunks()) if "stream" in group else 1,
    )
    starts = benchmark(fn, _chunks() if "stream" in group else _stream())
    assert starts == EXPECTED, (name, starts)


def test_native_vad_stream(benchmark) -> None:  # type: ignore[no-untyped-def]
    _bench(benchmark, native_stream, "vad-stream-20ms", "fastvoice VAD (Rust)")


def test_python_energy_vad_stream(benchmark) -> None:  # type: ignore[no-untyped-def]
    _bench(benchmark, python_stream, "vad-stream-20ms", "numpy energy VAD (old placeholder)")


def test_webrtc_vad_stream(benchmark) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("webrtcvad", reason="webrtcvad (pip install webrtcvad-wheels) is not installed")
    _bench(benchmark, webrtc_stream, "vad-stream-20ms", "webrtcvad (C, mode 2)")


def test_silero_vad_stream(benchmark) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip(
        "onnxruntime", reason="the Silero VAD needs onnxruntime (pip install 'fastvoice[local]')"
    )
    from fastvoice.voice._silero import shared_session

    shared_session()  # load the model before timing (~50 ms, once per process)
    _bench(benchmark, silero_stream, "vad-stream-20ms", "Silero VAD (onnxruntime, 1 thread)")


def test_native_vad_file(benchmark) -> None:  # type: ignore[no-untyped-def]
    _bench(benchmark, native_file, "vad-file", "fastvoice VAD (Rust), one call")


# -- agreement with the reference segments --

REFERENCE = ((0.35, 1.02), (2.59, 4.61))  # tests/data/README's two utterances


def _frames(spans: list[tuple[float, float]], n: int) -> np.ndarray:
    """Speech flags of `n` 20 ms frames: a frame is speech when its centre lies in a span."""
    centres = (np.arange(n) + 0.5) * FRAME / RATE
    flags = np.zeros(n, bool)
    for start, end in spans:
        flags |= (centres >= start) & (centres < end)
    return flags


def _one() -> bytes:
    return _stream()[: len(_stream()) // REPEATS]


def native_spans(pcm: bytes) -> list[tuple[float, float]]:
    vad = VAD(RATE, hangover_ms=500)
    events = [*vad.push(pcm), *[e for e in [vad.flush()] if e is not None]]
    starts = [e.sample / RATE for e in events if e.kind == "start"]
    stops = [e.sample / RATE for e in events if e.kind == "stop"]
    return list(zip(starts, [*stops, len(pcm) / 2 / RATE][: len(starts)], strict=True))


def webrtc_frames(pcm: bytes) -> np.ndarray:
    import webrtcvad  # type: ignore[import-untyped, import-not-found, unused-ignore]

    vad = webrtcvad.Vad(2)
    return np.array([vad.is_speech(pcm[i : i + 2 * FRAME], RATE) for i in range(0, len(pcm), 2 * FRAME)])


def silero_spans(pcm: bytes) -> list[tuple[float, float]]:
    from fastvoice.voice._silero import speech_segments
    from fastvoice.voice.config import TurnDetection

    return speech_segments(pcm, RATE, TurnDetection(silence_ms=500))


def test_vad_agreement(benchmark) -> None:  # type: ignore[no-untyped-def]
    """One table, all three: frame-level agreement with the reference (timed: Silero's pass over
    the clip, or the native one without onnxruntime)."""
    benchmark.group = "vad-agreement"
    pcm = _one()
    n = len(pcm) // (2 * FRAME)
    ref = _frames(list(REFERENCE), n)
    verdicts = {"fastvoice VAD (Rust)": _frames(native_spans(pcm), n)}
    try:
        verdicts["webrtcvad (C, mode 2)"] = webrtc_frames(pcm)[:n]
    except ImportError:
        print("webrtcvad is not installed: no agreement figure for it")  # optional baseline
    try:
        import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: no agreement figure for Silero")
        benchmark(native_spans, pcm)
    else:
        verdicts["Silero VAD"] = _frames(benchmark(silero_spans, pcm), n)
    agreement = {name: round(100 * float(np.mean(v == ref)), 1) for name, v in verdicts.items()}
    benchmark.extra_info.update(frames=n, agreement_pct=agreement)
    print(f"frame agreement with the reference ({n} frames of 20 ms):", agreement)
    # Silero lands within a 32 ms window of each boundary, so at most ~4 frames of 268 differ.
    assert agreement.get("Silero VAD", 100.0) >= 97.0, agreement
    assert agreement["fastvoice VAD (Rust)"] >= 85.0, agreement
