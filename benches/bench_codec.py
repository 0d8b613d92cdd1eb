"""Codec benchmarks: fastvoice next to the stdlib / numpy / scipy way of doing the same job.

Each group holds one job; every competitor's output is asserted equal to ours so a
benchmark cannot silently measure something else. Timed run:
    .venv/bin/python -m pytest benches/bench_codec.py --benchmark-enable --benchmark-only \
        --benchmark-columns=median,iqr,ops -p no:randomly
"""

import io
import warnings
import wave
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fastvoice.audio import from_pcm16, to_mono, to_pcm16, ulaw_decode, ulaw_encode, wav_decode, wav_encode
from scipy.io import wavfile

RNG = np.random.default_rng(42)


def speechlike(n: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise with a syllable-rate envelope, in [-1, 1): realistic value spread."""
    t = np.arange(n) / 24000
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2 / 4
    x = np.stack(
        [np.convolve(RNG.standard_normal(n), np.ones(8) / 8, "same") * env for _ in range(channels)], 1
    )
    return np.clip(x * 0.6, -1, 0.999).astype(np.float32)


def numpy_pcm16(x: np.ndarray) -> np.ndarray:
    """The same rule as to_pcm16 in numpy: float64 so that trunc(v +/- 0.5) is exact."""
    v = x.astype(np.float64) * 32768.0
    return np.clip(np.trunc(v + np.copysign(0.5, v)), -32768, 32767).astype(np.int16)


def float_wav(x: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, rate, x)  # scipy writes IEEE float (format 3) for float32
    return buf.getvalue()


def run(benchmark: Any, group: str, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    benchmark.group = group
    benchmark.extra_info["impl"] = name
    return benchmark(fn, *args)


# --- WAV decode, 10 s -----------------------------------------------------------------

PCM_24K = numpy_pcm16(speechlike(240_000)[:, 0])
WAV_24K = wav_encode(PCM_24K, 24000, 1)
F32_48K = speechlike(480_000, 2)
WAV_48K_F32 = float_wav(F32_48K, 48000)
PCM_48K = numpy_pcm16(F32_48K.ravel()).tobytes()


def stdlib_wave_decode(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def scipy_decode_pcm16(data: bytes) -> np.ndarray:
    _, x = wavfile.read(io.BytesIO(data))
    return np.asarray(x)


def scipy_decode_float_to_pcm16(data: bytes) -> np.ndarray:
    _, x = wavfile.read(io.BytesIO(data))
    return numpy_pcm16(np.asarray(x).ravel())


def fastvoice_decode(data: bytes) -> bytes:
    return wav_decode(data).pcm16


G_24K = "wav_decode 10 s 24 kHz mono PCM16"


def test_wav24k_fastvoice(benchmark: Any) -> None:
    assert run(benchmark, G_24K, "fastvoice", fastvoice_decode, WAV_24K) == PCM_24K.tobytes()


def test_wav24k_stdlib_wave(benchmark: Any) -> None:
    assert run(benchmark, G_24K, "wave+numpy", stdlib_wave_decode, WAV_24K).tobytes() == PCM_24K.tobytes()


def test_wav24k_scipy(benchmark: Any) -> None:
    assert (
        run(benchmark, G_24K, "scipy.io.wavfile", scipy_decode_pcm16, WAV_24K).tobytes() == PCM_24K.tobytes()
    )


G_48K = "wav_decode 10 s 48 kHz stereo float32 -> PCM16"
# stdlib `wave` cannot read IEEE float WAV (format 3): scipy + numpy is the Python baseline.


def test_wav48k_f32_fastvoice(benchmark: Any) -> None:
    assert run(benchmark, G_48K, "fastvoice", fastvoice_decode, WAV_48K_F32) == PCM_48K


def test_wav48k_f32_scipy_numpy(benchmark: Any) -> None:
    out = run(benchmark, G_48K, "scipy.io.wavfile+numpy", scipy_decode_float_to_pcm16, WAV_48K_F32)
    assert out.tobytes() == PCM_48K


# --- to_pcm16, 100 ms of 48 kHz float32 (4800 samples) ------------------------------

MIC_100MS = speechlike(4800)[:, 0].copy()
MIC_100MS[:4] = [1.0, -1.0, 2.0, np.nan]
MIC_WANT = numpy_pcm16(np.nan_to_num(MIC_100MS)).tobytes()
G_TO_PCM16 = "to_pcm16 100 ms float32 (4800 samples)"


def test_to_pcm16_fastvoice(benchmark: Any) -> None:
    assert run(benchmark, G_TO_PCM16, "fastvoice", to_pcm16, MIC_100MS) == MIC_WANT


def test_to_pcm16_numpy_same_rule(benchmark: Any) -> None:
    def np_rule(x: np.ndarray) -> bytes:
        with np.errstate(invalid="ignore"):
            return numpy_pcm16(np.nan_to_num(x)).tobytes()

    assert run(benchmark, G_TO_PCM16, "numpy (same rule, exact)", np_rule, MIC_100MS) == MIC_WANT


def test_to_pcm16_numpy_naive(benchmark: Any) -> None:
    # What is often written: float32 maths and half-to-even rounding. Not the same rule at
    # exact ties (it rounds them to even), so only its shape of work is comparable.
    def naive(x: np.ndarray) -> bytes:
        return np.clip(np.rint(x * np.float32(32768)), -32768, 32767).astype(np.int16).tobytes()

    with np.errstate(invalid="ignore"):
        out = run(benchmark, G_TO_PCM16, "numpy (rint, float32)", naive, MIC_100MS)
    got, want = np.frombuffer(out, np.int16)[4:], np.frombuffer(MIC_WANT, np.int16)[4:]
    assert np.abs(got.astype(int) - want).max() <= 1


def test_from_pcm16_float32_fastvoice(benchmark: Any) -> None:
    out = run(benchmark, "from_pcm16 100 ms -> float32", "fastvoice", from_pcm16, MIC_WANT, "float32")
    np.testing.assert_array_equal(out, np.frombuffer(MIC_WANT, np.int16) / np.float32(32768))


def test_from_pcm16_float32_numpy(benchmark: Any) -> None:
    def np_way(b: bytes) -> np.ndarray:
        return np.frombuffer(b, np.int16).astype(np.float32) / np.float32(32768)

    out = run(benchmark, "from_pcm16 100 ms -> float32", "numpy", np_way, MIC_WANT)
    np.testing.assert_array_equal(out, from_pcm16(MIC_WANT, "float32"))


# --- G.711 μ-law, 1 s at 8 kHz and one 20 ms frame --------------------------------------

PHONE_1S = numpy_pcm16(speechlike(8000)[:, 0])
PHONE_20MS = PHONE_1S[:160].copy()
# numpy baseline: a 65536-entry encode table indexed by the sample's bits, 256-entry decode.
ENC_TABLE = np.frombuffer(ulaw_encode(np.arange(-32768, 32768, dtype=np.int16)), np.uint8)
ENC_TABLE = np.roll(ENC_TABLE, -32768)  # index by x.view(uint16)
DEC_TABLE = np.frombuffer(ulaw_decode(bytes(range(256))), "<i2").copy()
ULAW_1S = ulaw_encode(PHONE_1S)


def numpy_ulaw_encode(x: np.ndarray) -> bytes:
    return ENC_TABLE[x.view(np.uint16)].tobytes()


def numpy_ulaw_decode(b: bytes) -> bytes:
    return DEC_TABLE[np.frombuffer(b, np.uint8)].tobytes()


def load_audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


AUDIOOP = load_audioop()
needs_audioop = pytest.mark.skipif(AUDIOOP is None, reason="audioop was removed in Python 3.13")


@pytest.mark.parametrize(("label", "pcm"), [("1 s", PHONE_1S), ("20 ms", PHONE_20MS)])
def test_ulaw_encode_fastvoice(benchmark: Any, label: str, pcm: np.ndarray) -> None:
    out = run(benchmark, f"ulaw_encode {label}", "fastvoice", ulaw_encode, pcm)
    assert out == numpy_ulaw_encode(pcm)


@pytest.mark.parametrize(("label", "pcm"), [("1 s", PHONE_1S), ("20 ms", PHONE_20MS)])
def test_ulaw_encode_numpy_table(benchmark: Any, label: str, pcm: np.ndarray) -> None:
    out = run(benchmark, f"ulaw_encode {label}", "numpy table", numpy_ulaw_encode, pcm)
    assert out == ulaw_encode(pcm)


@needs_audioop
@pytest.mark.parametrize(("label", "pcm"), [("1 s", PHONE_1S), ("20 ms", PHONE_20MS)])
def test_ulaw_encode_audioop(benchmark: Any, label: str, pcm: np.ndarray) -> None:
    assert AUDIOOP is not None
    out = run(benchmark, f"ulaw_encode {label}", "audioop (3.11)", AUDIOOP.lin2ulaw, pcm.tobytes(), 2)
    assert out == ulaw_encode(pcm)


@pytest.mark.parametrize(("label", "codes"), [("1 s", ULAW_1S), ("20 ms", ULAW_1S[:160])])
def test_ulaw_decode_fastvoice(benchmark: Any, label: str, codes: bytes) -> None:
    out = run(benchmark, f"ulaw_decode {label}", "fastvoice", ulaw_decode, codes)
    assert out == numpy_ulaw_decode(codes)


@pytest.mark.parametrize(("label", "codes"), [("1 s", ULAW_1S), ("20 ms", ULAW_1S[:160])])
def test_ulaw_decode_numpy_table(benchmark: Any, label: str, codes: bytes) -> None:
    out = run(benchmark, f"ulaw_decode {label}", "numpy table", numpy_ulaw_decode, codes)
    assert out == ulaw_decode(codes)


@needs_audioop
@pytest.mark.parametrize(("label", "codes"), [("1 s", ULAW_1S), ("20 ms", ULAW_1S[:160])])
def test_ulaw_decode_audioop(benchmark: Any, label: str, codes: bytes) -> None:
    assert AUDIOOP is not None
    out = run(benchmark, f"ulaw_decode {label}", "audioop (3.11)", AUDIOOP.ulaw2lin, codes, 2)
    assert out == ulaw_decode(codes)


# --- to_mono, 1 s of 48 kHz stereo int16 -------------------------------------------------

STEREO_1S = numpy_pcm16(speechlike(48_000, 2).ravel())
G_MONO = "to_mono 1 s 48 kHz stereo int16"


def numpy_mono(x: np.ndarray) -> np.ndarray:
    """The same rule in numpy: the mean of each frame, rounded half away from zero."""
    s = x[0::2].astype(np.int32) + x[1::2]  # faster than reshape(-1, 2).sum(axis=1)
    return ((s + 1 + (s >> 31)) >> 1).astype(np.int16)


def test_to_mono_fastvoice(benchmark: Any) -> None:
    out = run(benchmark, G_MONO, "fastvoice", to_mono, STEREO_1S, 2)
    np.testing.assert_array_equal(out, numpy_mono(STEREO_1S))


def test_to_mono_numpy(benchmark: Any) -> None:
    out = run(benchmark, G_MONO, "numpy", numpy_mono, STEREO_1S)
    mean = STEREO_1S.reshape(-1, 2).astype(np.float64).mean(axis=1)  # independent check of the rule
    np.testing.assert_array_equal(out, (np.sign(mean) * np.floor(np.abs(mean) + 0.5)).astype(np.int16))
