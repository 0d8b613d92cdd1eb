"""Audio inputs (AudioInput, StreamedAudioInput) and the placeholder energy turn detector."""

from __future__ import annotations

import io
import math
import random
import wave

import numpy as np
import pytest
from fastvoice import AudioFormatError
from fastvoice.voice import AudioInput, TurnDetection
from fastvoice.voice._vad import EnergyTurnDetector, has_speech

RATE = 16000


def tone(seconds: float, amp: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * 300 * t) * amp * 32767).astype(np.int16)


def stdlib_wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def test_wav_is_detected_and_decoded():
    x = tone(0.25, rate=22050)
    inp = AudioInput(stdlib_wav(x, 22050))
    assert inp.format == "wav" and inp.sample_rate == 22050
    assert inp.pcm16 == x.tobytes() and inp.duration_s == pytest.approx(0.25, abs=1e-4)
    assert "22050 Hz" in repr(inp)


def test_stereo_wav_and_pcm_are_downmixed():
    rng = np.random.default_rng(1)
    stereo = rng.integers(-20000, 20000, size=(1000, 2)).astype(np.int16)
    ref = stereo.astype(np.float64).mean(axis=1)
    for inp in (
        AudioInput(stdlib_wav(stereo.reshape(-1), 8000, channels=2)),
        AudioInput(stereo.reshape(-1).tobytes(), sample_rate=8000, channels=2),
        AudioInput(stereo, sample_rate=8000, channels=2),
    ):
        mono = np.frombuffer(inp.pcm16, dtype="<i2")
        assert inp.sample_rate == 8000 and len(mono) == 1000
        assert np.max(np.abs(mono - ref)) <= 1  # the mean, rounded either way


def test_numpy_inputs_follow_the_pcm16_rule():
    f = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, np.nan], dtype=np.float32)
    expected = np.array([0, 16384, -16384, 32767, -32768, 32767, 0], dtype=np.int16)
    assert AudioInput(f, sample_rate=RATE).pcm16 == expected.tobytes()
    assert AudioInput(f.astype(np.float64), sample_rate=RATE).pcm16 == expected.tobytes()
    assert AudioInput(expected).pcm16 == expected.tobytes()
    assert AudioInput(bytearray(expected.tobytes())).format == "pcm16"


@pytest.mark.parametrize(
    "data",
    [np.zeros(4, dtype=np.int32), np.zeros(4, dtype=np.uint16), [0, 1, 2], "text", b"\x00\x01\x02"],
    ids=["int32", "uint16", "list", "str", "odd-bytes"],
)
def test_bad_samples_raise_on_decode(data):
    inp = AudioInput(data, format="pcm16")
    with pytest.raises(AudioFormatError):
        inp.decode()


def test_bad_arguments_raise_at_once():
    with pytest.raises(ValueError, match="format"):
        AudioInput(b"", format="mp3")  # type: ignore[arg-type]
    for rate in (0, -1, 10**7, 16000.0, True):
        with pytest.raises(AudioFormatError, match="sample_rate"):
            AudioInput(b"", sample_rate=rate)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="channels"):
        AudioInput(b"", channels=0)


def test_truncated_wav_is_a_format_error():
    data = stdlib_wav(tone(0.1), RATE)
    inp = AudioInput(data[:30])
    assert inp.format == "wav"
    with pytest.raises(AudioFormatError):
        inp.decode()


# -- the energy turn detector (placeholder for the native VAD) --


def stream(*parts: tuple[str, float]) -> bytes:
    return b"".join(
        (tone(s) if kind == "speech" else np.zeros(int(s * RATE), np.int16)).tobytes() for kind, s in parts
    )


def detect(data: bytes, chunks: list[int]) -> list[bytes]:
    det = EnergyTurnDetector(RATE, TurnDetection())
    turns: list[bytes] = []
    i = 0
    for n in chunks:
        turns += det.push(data[i : i + n])
        i += n
    turns += det.push(data[i:])
    if (last := det.flush()) is not None:
        turns.append(last)
    return turns


DATA = stream(("silence", 0.5), ("speech", 0.4), ("silence", 1.0), ("speech", 0.05), ("silence", 1.0))
DATA += stream(("speech", 1.0), ("silence", 0.3))


def test_turns_and_their_boundaries():
    turns = detect(DATA, [])
    # The 50 ms blip is shorter than min_speech_ms: not a turn.
    assert len(turns) == 2
    # First: 200 ms pre-roll + 400 ms speech + 700 ms hangover.
    assert len(turns[0]) / 2 / RATE == pytest.approx(1.3, abs=0.021)
    start = DATA.index(turns[0])
    assert start / 2 / RATE == pytest.approx(0.3, abs=0.021)
    # Second: cut by the end of the stream (flush): pre-roll + speech + 300 ms.
    assert len(turns[1]) / 2 / RATE == pytest.approx(1.5, abs=0.021)
    assert DATA.endswith(turns[1])


@pytest.mark.parametrize("seed", range(5))
def test_chunking_does_not_change_the_turns(seed):
    rng = random.Random(seed)
    chunks = [2 * rng.randint(0, 800) for _ in range(200)]
    assert detect(DATA, chunks) == detect(DATA, [])


def test_has_speech():
    assert has_speech(tone(0.2).tobytes(), RATE)
    assert not has_speech(tone(0.04).tobytes(), RATE)  # shorter than 60 ms
    assert not has_speech(tone(1.0, amp=0.001).tobytes(), RATE)  # -60 dBFS
    assert not has_speech(b"", RATE)


def test_detector_settings_are_checked():
    with pytest.raises(ValueError, match="turn detection"):
        EnergyTurnDetector(RATE, TurnDetection(silence_ms=0))
