"""The native VAD (`fastvoice.audio.VAD`) against boundaries measured independently with numpy
from the recordings in tests/data, on silence and noise, for any chunking and sample type."""

from __future__ import annotations

import random
import threading
import time
import wave

import numpy as np
import pytest
from _data import data_path
from fastvoice import audio
from fastvoice.audio import VAD, AudioFormatError, VADEvent
from fastvoice.voice import TurnDetection
from fastvoice.voice._vad import EnergyTurnDetector, has_speech
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

TOLERANCE_S = 0.15


def read_wav(name: str) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate, read with the stdlib (PCM16 files)."""
    with wave.open(str(data_path(name))) as w:
        assert w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return x[:, 0].copy(), w.getframerate()


def truth_segments(
    x: np.ndarray, rate: int, gate_db: float = -50.0, bridge_s: float = 0.3
) -> list[tuple[float, float]]:
    """Speech segments from the energy envelope: 10 ms RMS above `gate_db`, gaps shorter than
    `bridge_s` bridged, blips shorter than 60 ms dropped."""
    hop = rate // 100
    n = len(x) // hop
    frames = x[: n * hop].astype(np.float64).reshape(n, hop) / 32768.0
    loud = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12) > gate_db
    segs: list[list[int]] = []
    for i in np.flatnonzero(loud):
        if segs and i - segs[-1][1] <= bridge_s * 100:
            segs[-1][1] = i + 1
        else:
            segs.append([i, i + 1])
    return [(a / 100, b / 100) for a, b in segs if b - a >= 6]


def run(vad: VAD, data: object, chunks: list[int] | None = None) -> list[VADEvent]:
    arr = np.asarray(data) if not isinstance(data, bytes) else data
    events: list[VADEvent] = []
    if chunks is None:
        events += vad.push(arr)
    else:
        i = 0
        for n in chunks:
            events += vad.push(arr[i : i + n])
            i += n
        events += vad.push(arr[i:])
    if (last := vad.flush()) is not None:
        events.append(last)
    return events


def pairs(events: list[VADEvent]) -> list[tuple[float, float]]:
    kinds = [e.kind for e in events]
    assert kinds == ["start", "stop"] * (len(events) // 2), kinds
    return [(a.time_s, b.time_s) for a, b in zip(events[::2], events[1::2], strict=True)]


def test_two_turns_are_found_at_the_measured_boundaries() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    truth = truth_segments(x, rate)
    assert len(truth) == 2, truth  # the file's own description: two utterances
    found = pairs(run(VAD(rate), x))
    assert len(found) == 2, found
    for (s, e), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) <= TOLERANCE_S and abs(e - te) <= TOLERANCE_S, (found, truth)


@pytest.mark.parametrize("seed", range(4))
def test_events_do_not_depend_on_chunking_or_sample_type(seed: int) -> None:
    x, rate = read_wav("two_turns_16k.wav")
    reference = run(VAD(rate), x.tobytes())
    rng = random.Random(seed)
    chunks = [rng.randint(0, 700) for _ in range(300)]
    assert run(VAD(rate), x, chunks) == reference
    assert run(VAD(rate), x.astype(np.float32) / 32768, chunks) == reference
    assert run(VAD(rate), x.astype(np.float64) / 32768) == reference
    assert run(VAD(rate), bytearray(x.tobytes())) == reference
    assert run(VAD(rate), memoryview(x.tobytes())) == reference


def test_padded_offsets_and_event_fields() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    vad = VAD(rate, prefix_padding_ms=200, hangover_ms=400)
    events = run(vad, x)
    start, stop = events[0], events[1]
    assert start.sample - start.padded_sample == rate * 200 // 1000
    assert stop.padded_sample >= stop.sample + rate * 400 // 1000 - vad.frame_samples
    assert events[2].padded_sample >= stop.padded_sample  # padding never overlaps the last turn
    assert start.sample_rate == rate and start.time_s == pytest.approx(start.sample / rate)
    assert start.padded_time_s == pytest.approx(start.padded_sample / rate)
    assert "start" in repr(start) and start != stop and start == events[0]


@pytest.mark.parametrize("name", ["weather_22k.wav", "voice_sample_24k.wav", "lights_48k_stereo_f32.wav"])
def test_each_other_recording_is_one_utterance(name: str) -> None:
    wav = audio.wav_decode(data_path(name).read_bytes())
    x = audio.from_pcm16(wav.pcm16)
    if wav.channels > 1:
        x = audio.to_mono(x, wav.channels)
    x16 = audio.to_pcm16(x)
    truth = truth_segments(np.frombuffer(x16, dtype="<i2"), wav.sample_rate, bridge_s=0.5)
    found = pairs(run(VAD(wav.sample_rate), x))
    assert len(found) == len(truth) == 1, (found, truth)
    assert abs(found[0][0] - truth[0][0]) <= TOLERANCE_S, (found, truth)
    # A file that ends mid-word is closed by flush() at its end.
    assert found[0][1] <= wav.duration_s + 1e-9
    assert abs(min(found[0][1], truth[0][1]) - truth[0][1]) <= TOLERANCE_S, (found, truth)


def white(seconds: float, dbfs: float, rate: int = 16000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * rate)) * 10 ** (dbfs / 20)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_silence_is_not_speech(frame_ms: int) -> None:
    assert run(VAD(16000, frame_ms=frame_ms), np.zeros(16000 * 5, np.int16)) == []
    assert run(VAD(16000, frame_ms=frame_ms), b"") == []


@pytest.mark.parametrize("dbfs", [-60.0, -40.0, -20.0])
def test_white_noise_is_not_speech(dbfs: float) -> None:
    noise = white(5, dbfs)
    level = 10 * np.log10(np.mean((noise / 32768.0) ** 2))
    assert level == pytest.approx(dbfs, abs=0.5)  # the level the test claims
    assert run(VAD(16000), noise) == []


def test_steady_low_frequency_noise_stops_counting_within_one_window() -> None:
    # Rumble (white noise low-passed at 300 Hz) at -30 dBFS has a speech-like zero-crossing
    # rate; only the adaptive floor can tell it from speech.
    b, a = signal.butter(4, 300, fs=16000)
    rumble = signal.lfilter(b, a, white(8, -10).astype(np.float64) / 32768)
    rumble *= 10 ** (-30 / 20) / np.sqrt(np.mean(rumble**2))
    events = run(VAD(16000, noise_window_ms=1500), rumble.astype(np.float32))
    assert all(e.time_s <= 1.6 for e in events), events


def test_speech_is_found_over_steady_noise() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    noisy = np.clip(x.astype(np.int32) + white(len(x) / rate, -40, rate)[: len(x)], -32768, 32767).astype(
        np.int16
    )
    truth = truth_segments(x, rate)
    found = pairs(run(VAD(rate), noisy))
    assert len(found) == 2, found
    for (s, e), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) <= TOLERANCE_S and abs(e - te) <= TOLERANCE_S, (found, truth)


def test_state_properties_and_reset() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    vad = VAD(rate)
    assert (vad.sample_rate, vad.frame_samples, vad.position, vad.in_speech) == (rate, 320, 0, False)
    onset = int(truth_segments(x, rate)[0][0] * rate)
    vad.push(x[: onset + rate // 2])
    assert vad.in_speech and vad.position == onset + rate // 2
    assert vad.level_db > -45 and vad.noise_floor_db < vad.level_db
    vad.reset()
    assert (vad.position, vad.in_speech) == (0, False)
    assert "VAD(sample_rate=16000" in repr(vad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": -16000}, "sample_rate"),
        ({"frame_ms": 25}, "frame_ms"),
        ({"threshold_db": 6.0}, "threshold_db"),
        ({"threshold_db": float("nan")}, "threshold_db"),
        ({"snr_db": -3.0}, "snr_db"),
        ({"max_zero_crossing_rate": 2.0}, "max_zero_crossing_rate"),
        ({"hangover_ms": -1}, "hangover_ms"),
        ({"min_speech_ms": 10**9}, "min_speech_ms"),
    ],
)
def test_bad_settings_raise_audio_format_error(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(AudioFormatError, match=match):
        VAD(**kwargs)  # type: ignore[arg-type]


def test_bad_input_raises_clear_errors() -> None:
    vad = VAD()
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        vad.push(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError, match="unsupported sample type"):
        vad.push(np.zeros(10, np.int32))
    with pytest.raises(TypeError, match="expected audio"):
        vad.push("not audio")  # type: ignore[arg-type]
    assert vad.position == 0  # nothing was consumed


def test_large_chunks_release_the_gil() -> None:
    x = np.tile(read_wav("two_turns_16k.wav")[0], 40)  # ~3.5 min in one chunk
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.01)
        before = ticks
        t0 = time.perf_counter()
        for _ in range(5):
            VAD().push(x)
        elapsed = time.perf_counter() - t0
        during = ticks - before
    finally:
        stop.set()
        t.join()
    # With the GIL held for each whole push the counter could only move between the 5 pushes.
    assert during > 50, (during, elapsed)


def test_turn_detector_cuts_the_measured_turns() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    data = x.tobytes()
    det = EnergyTurnDetector(rate, TurnDetection())
    turns = [t for i in range(0, len(data), 640) for t in det.push(data[i : i + 640])]
    if (last := det.flush()) is not None:
        turns.append(last)
    assert len(turns) == 2
    for turn, (ts, te) in zip(turns, truth_segments(x, rate), strict=True):
        start = data.index(turn) / 2 / rate
        end = start + len(turn) / 2 / rate
        assert start <= ts and end >= te - 0.02  # the whole utterance, with its padding
        assert ts - start <= 0.2 + TOLERANCE_S and end - te <= 0.7 + TOLERANCE_S


def test_has_speech_on_recordings_and_noise() -> None:
    x, rate = read_wav("two_turns_16k.wav")
    assert has_speech(x.tobytes(), rate)
    assert not has_speech(white(3, -30).tobytes(), 16000)
    assert not has_speech(np.zeros(16000, np.int16).tobytes(), 16000)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(
        st.tuples(st.sampled_from(["tone", "noise", "zero"]), st.integers(1, 8000), st.floats(0.0, 0.9)),
        min_size=1,
        max_size=12,
    ),
    cuts=st.lists(st.integers(0, 5000), max_size=20),
    frame_ms=st.sampled_from([10, 20, 30]),
)
def test_events_are_well_formed_for_any_signal_and_chunking(
    segments: list[tuple[str, int, float]], cuts: list[int], frame_ms: int
) -> None:
    rng = np.random.default_rng(0)
    parts = []
    for kind, n, amp in segments:
        if kind == "tone":
            parts.append(np.sin(np.arange(n) * 2 * np.pi * 220 / 16000) * amp)
        elif kind == "noise":
            parts.append(rng.uniform(-amp, amp, n))
        else:
            parts.append(np.zeros(n))
    x = (np.concatenate(parts) * 32767).astype(np.int16)
    kwargs = {"frame_ms": frame_ms, "min_speech_ms": 40, "hangover_ms": 100, "prefix_padding_ms": 60}
    events = run(VAD(16000, **kwargs), x, cuts)
    assert events == run(VAD(16000, **kwargs), x)  # chunking never matters
    assert [e.kind for e in events] == ["start", "stop"] * (len(events) // 2)
    previous_stop = 0
    for start, stop in zip(events[::2], events[1::2], strict=True):
        assert (
            previous_stop <= start.padded_sample <= start.sample < stop.sample <= stop.padded_sample <= len(x)
        )
        assert start.sample % (16 * frame_ms) == 0  # on frame boundaries
        previous_stop = stop.padded_sample
