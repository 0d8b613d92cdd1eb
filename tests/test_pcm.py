"""PCM16 <-> float conversion and downmixing, checked against numpy references."""

import threading

import numpy as np
import pytest
from fastvoice.audio import AudioFormatError, from_pcm16, to_mono, to_pcm16
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Exact round-half-away-from-zero in float64 (floor and the fraction are exact)."""
    a = np.abs(v)
    r = np.floor(a)
    r = r + ((a - r) >= 0.5)
    return np.copysign(r, v)


def ref_to_pcm16(x: np.ndarray) -> bytes:
    """The documented rule, computed independently: clip(round(x * 32768)), NaN -> 0."""
    v = x.astype(np.float64) * 32768.0
    with np.errstate(invalid="ignore"):
        r = round_half_away(v)
    r = np.nan_to_num(r, nan=0.0, posinf=32767.0, neginf=-32768.0)
    return np.clip(r, -32768, 32767).astype("<i2").tobytes()


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -7.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30]
# Half-LSB boundaries, where the tie rule decides.
HALVES = [(k + 0.5) / 32768 for k in range(-5, 5)] + [32767.5 / 32768, -32768.5 / 32768]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_pcm16_floats_match_reference(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-1.2, 1.2, 10_000), SPECIAL, HALVES]).astype(dtype)
    assert to_pcm16(x) == ref_to_pcm16(x)


def test_to_pcm16_float32_near_every_half_step() -> None:
    # Every float32 within a few ulps of each k/2 LSB over the whole int16 range.
    centres = (np.arange(-65540, 65541, dtype=np.float64) / 65536).astype(np.float32)
    x = np.concatenate([np.nextafter(centres, np.float32(d)) for d in (-np.inf, np.inf)] + [centres])
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])
    assert to_pcm16(x) == ref_to_pcm16(x)


def test_to_pcm16_specific_values() -> None:
    got = np.frombuffer(to_pcm16(np.array([1.0, -1.0, 0.5, np.nan, 2.0, -2.0], np.float32)), "<i2")
    assert got.tolist() == [32767, -32768, 16384, 0, 32767, -32768]


def test_to_pcm16_pcm_passes_through() -> None:
    pcm = np.arange(-1000, 1000, 7, dtype=np.int16)
    raw = pcm.tobytes()
    assert to_pcm16(pcm) == raw
    assert to_pcm16(raw) is raw  # bytes are returned without a copy
    assert to_pcm16(bytearray(raw)) == raw
    assert to_pcm16(memoryview(raw)) == raw
    assert type(to_pcm16(bytearray(raw))) is bytes
    # A 2-D array is taken in C order (interleaved frames).
    assert to_pcm16(pcm.reshape(-1, 2)) == raw
    # Large inputs take the GIL-free copy path.
    big = np.random.default_rng(9).integers(-32768, 32768, 100_001).astype(np.int16)
    assert to_pcm16(big) == big.tobytes()
    assert to_pcm16(bytearray(big.tobytes())) == big.tobytes()
    assert to_pcm16(memoryview(big.tobytes())[2:]) == big.tobytes()[2:]
    unaligned = memoryview(b"\x00" + big.tobytes())[1:]
    assert to_pcm16(unaligned) == big.tobytes()
    np.testing.assert_array_equal(from_pcm16(unaligned), big)


def test_strided_arrays_are_made_contiguous() -> None:
    stereo = np.arange(-1000, 1000, 7, dtype=np.int16).reshape(-1, 2)
    assert to_pcm16(stereo[:, 0]) == stereo[:, 0].tobytes()


def test_every_int16_survives_float_round_trip() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    f = from_pcm16(pcm.tobytes(), "float32")
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, pcm.astype(np.float32) / np.float32(32768))
    assert to_pcm16(f) == pcm.tobytes()
    assert to_pcm16(f.astype(np.float64)) == pcm.tobytes()


def test_from_pcm16_int16() -> None:
    raw = np.array([0, 1, -1, 32767, -32768], "<i2").tobytes()
    for src in (raw, bytearray(raw), memoryview(raw), np.frombuffer(raw, np.int16)):
        out = from_pcm16(src)
        assert out.dtype == np.int16
        assert out.tolist() == [0, 1, -1, 32767, -32768]
        assert out.flags.writeable and out.flags.owndata
    out = from_pcm16(raw, np.int16)
    out[0] = 5  # a fresh array: writing to it leaves the input alone
    assert raw[:2] == b"\x00\x00"
    assert from_pcm16(raw, np.dtype("float32")).dtype == np.float32
    assert from_pcm16(b"").shape == (0,)


@pytest.mark.parametrize("dtype", ["float64", "int8", "bogus", np.int32, 42])
def test_from_pcm16_rejects_unknown_dtype(dtype: object) -> None:
    with pytest.raises(AudioFormatError, match="dtype"):
        from_pcm16(b"\x00\x00", dtype)  # type: ignore[call-overload]


def test_odd_byte_counts_and_bad_inputs_raise() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        to_pcm16(b"\x00\x00\x00")
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        to_pcm16(bytearray(3))
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        from_pcm16(b"\x01")
    with pytest.raises(AudioFormatError, match="to_pcm16"):
        from_pcm16(np.zeros(4, np.float32))
    with pytest.raises(AudioFormatError):
        to_pcm16(np.zeros(4, np.int32))
    with pytest.raises(AudioFormatError, match="big-endian"):
        to_pcm16(np.zeros(4, ">f4"))
    with pytest.raises(TypeError):
        to_pcm16([0.0, 0.5])  # type: ignore[arg-type]
    assert issubclass(AudioFormatError, ValueError)


def ref_mono_int(pcm: np.ndarray, channels: int) -> np.ndarray:
    mean = pcm.reshape(-1, channels).astype(np.float64).mean(axis=1)
    return round_half_away(mean).astype(np.int16)


@pytest.mark.parametrize("channels", [2, 3, 4, 6])
def test_to_mono_int16(channels: int) -> None:
    rng = np.random.default_rng(channels)
    pcm = rng.integers(-32768, 32768, 3000 * channels).astype(np.int16)
    pcm[: 4 * channels] = [32767, -32768] * (2 * channels)  # extremes cannot overflow
    want = ref_mono_int(pcm, channels)
    out = to_mono(pcm, channels)
    assert isinstance(out, np.ndarray) and out.dtype == np.int16
    np.testing.assert_array_equal(out, want)
    raw = to_mono(pcm.tobytes(), channels)
    assert type(raw) is bytes and raw == want.tobytes()
    assert to_mono(bytearray(pcm.tobytes()), channels) == want.tobytes()
    np.testing.assert_array_equal(to_mono(pcm.reshape(-1, channels), channels), want)


def test_to_mono_ties_round_away_from_zero() -> None:
    out = to_mono(np.array([1, 2, -1, -2, 0, 1, 0, -1], np.int16), 2)
    assert out.tolist() == [2, -2, 1, -1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_mono_float(dtype: type) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, 48_000 * 2).astype(dtype)
    out = to_mono(x, 2)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, (x[0::2] + x[1::2]) / dtype(2))
    x3 = x[: 3 * 1000]
    np.testing.assert_allclose(to_mono(x3, 3), x3.reshape(-1, 3).mean(axis=1), rtol=1e-6, atol=1e-7)


def test_to_mono_channels_one_and_errors() -> None:
    pcm = np.arange(10, dtype=np.int16)
    raw = pcm.tobytes()
    assert to_mono(raw, 1) is raw
    assert to_mono(pcm, 1) is pcm
    with pytest.raises(AudioFormatError, match="whole number"):
        to_mono(np.arange(9, dtype=np.int16), 2)
    with pytest.raises(AudioFormatError, match="whole number"):
        to_mono(b"\x00" * 6, 2)
    with pytest.raises(AudioFormatError, match="even number"):
        to_mono(b"\x00" * 3, 1)
    for bad in (0, -1, 65536):
        with pytest.raises(AudioFormatError, match="channels"):
            to_mono(raw, bad)
    assert to_mono(b"", 2) == b""


def test_large_inputs_from_many_threads() -> None:
    # Large inputs release the GIL; results must stay correct under concurrency.
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 1_000_000).astype(np.float32)
    want = ref_to_pcm16(x)
    mono_want = (x[0::2] + x[1::2]) / np.float32(2)
    errors: list[str] = []

    def work() -> None:
        for _ in range(3):
            if to_pcm16(x) != want:
                errors.append("to_pcm16")
            if not np.array_equal(to_mono(x, 2), mono_want):
                errors.append("to_mono")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@settings(max_examples=200, deadline=None)
@given(
    channels=st.integers(1, 8),
    frames=st.integers(0, 300),
    data=st.data(),
)
def test_to_mono_int16_property(channels: int, frames: int, data: st.DataObject) -> None:
    pcm = data.draw(hnp.arrays(np.int16, frames * channels))
    out = to_mono(pcm, channels)
    np.testing.assert_array_equal(out, pcm if channels == 1 else ref_mono_int(pcm, channels))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 200), elements=st.floats(width=32, allow_subnormal=True)))
def test_to_pcm16_property(x: np.ndarray) -> None:
    assert to_pcm16(x) == ref_to_pcm16(x)
