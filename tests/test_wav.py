"""WAV encode/decode against stdlib `wave`, scipy and files built byte by byte with struct."""

import io
import struct
import wave

import numpy as np
import pytest
from _data import AUDIO, data_path
from fastvoice.audio import AudioFormatError, WavAudio, to_pcm16, ulaw_decode, wav_decode, wav_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KSDATAFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")


# --- independent builders and references ---------------------------------------------


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, block_align: int | None = None) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def extensible_chunk(sub: int, channels: int, rate: int, bits: int, valid_bits: int | None = None) -> bytes:
    base = fmt_chunk(0xFFFE, channels, rate, bits)
    guid = struct.pack("<H", sub) + KSDATAFORMAT_TAIL
    return base + struct.pack("<HHI", 22, valid_bits or bits, 0x3) + guid


def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return cid + struct.pack("<I", len(body) if size is None else size) + body + pad


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def round_half_away(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    r = np.floor(a)
    return np.copysign(r + ((a - r) >= 0.5), v)


def ref_pcm16_from_float(x: np.ndarray) -> np.ndarray:
    """clip(round_half_away(x * 32768)) in exact float64, NaN -> 0: the documented rule."""
    with np.errstate(invalid="ignore"):
        r = round_half_away(x.astype(np.float64) * 32768.0)
    return np.clip(np.nan_to_num(r, nan=0.0), -32768, 32767).astype(np.int16)


def ref_pcm16_from_int(v: np.ndarray, bits: int) -> np.ndarray:
    """Integer PCM of `bits` bits scaled to 16 bits as if normalised to float (rounded, clipped)."""
    return ref_pcm16_from_float(v.astype(np.float64) / 2.0 ** (bits - 1))


def int24_bytes(v: np.ndarray) -> bytes:
    b = v.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
    return b.tobytes()


def pcm(data: WavAudio) -> np.ndarray:
    return np.frombuffer(data.pcm16, "<i2")


RNG = np.random.default_rng(2024)


# --- stdlib wave interop -------------------------------------------------------------


@pytest.mark.parametrize("sampwidth", [1, 2, 3, 4])
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2), (16000, 3)])
def test_decodes_files_written_by_stdlib_wave(sampwidth: int, rate: int, channels: int) -> None:
    n = 999 * channels
    bits = 8 * sampwidth
    if sampwidth == 1:
        raw_u8 = RNG.integers(0, 256, n).astype(np.uint8)
        frames = raw_u8.tobytes()
        want = ((raw_u8.astype(np.int32) - 128) * 256).astype(np.int16)
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
        v = RNG.integers(lo, hi, n, dtype=np.int64)
        v[:4] = [lo, hi - 1, 0, -1]
        if sampwidth == 2:
            frames = v.astype("<i2").tobytes()
        elif sampwidth == 3:
            frames = int24_bytes(v)
        else:
            frames = v.astype("<i4").tobytes()
        want = ref_pcm16_from_int(v, bits)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(frames)
    out = wav_decode(buf.getvalue())
    assert (out.sample_rate, out.channels, out.bits_per_sample, out.format) == (rate, channels, bits, "pcm")
    assert out.num_frames == n // channels
    assert out.duration_s == pytest.approx(n / channels / rate)
    np.testing.assert_array_equal(pcm(out), want)


@pytest.mark.parametrize(("rate", "channels"), [(24000, 1), (48000, 2), (8000, 6)])
def test_encoded_files_read_back_with_stdlib_wave(rate: int, channels: int) -> None:
    samples = RNG.integers(-32768, 32768, 1200 * channels).astype(np.int16)
    data = wav_encode(samples, rate, channels)
    assert len(data) == 44 + 2 * samples.size
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (rate, channels, 2)
        assert w.getnframes() == 1200
        assert w.readframes(w.getnframes()) == samples.tobytes()
    # The header is the canonical one: RIFF size, fmt 16, byte rate and block align.
    riff_size, fmt_size, tag, ch, sr, byte_rate, align, bits = struct.unpack_from("<4xI8xIHHIIHH", data)
    assert (riff_size, fmt_size, tag, ch, sr) == (len(data) - 8, 16, 1, channels, rate)
    assert (byte_rate, align, bits) == (rate * channels * 2, channels * 2, 16)
    assert data[36:40] == b"data" and struct.unpack_from("<I", data, 40)[0] == samples.size * 2


def test_encode_accepts_every_input_kind_and_defaults_to_24k_mono() -> None:
    samples = RNG.integers(-32768, 32768, 480).astype(np.int16)
    want = wav_encode(samples.tobytes())
    for src in (samples, bytearray(samples.tobytes()), memoryview(samples.tobytes())):
        assert wav_encode(src) == want
    out = wav_decode(want)
    assert (out.sample_rate, out.channels) == (24000, 1)
    # Floats are converted with the to_pcm16 rule.
    f = RNG.uniform(-1.5, 1.5, 480).astype(np.float32)
    assert wav_encode(f)[44:] == to_pcm16(f)
    assert wav_encode(f.astype(np.float64), sample_rate=16000)[44:] == to_pcm16(f.astype(np.float64))
    assert wav_decode(wav_encode(b"")).num_frames == 0


def test_encode_rejects_bad_parameters() -> None:
    with pytest.raises(AudioFormatError, match="whole number"):
        wav_encode(np.zeros(5, np.int16), 8000, 2)
    with pytest.raises(AudioFormatError, match="even number"):
        wav_encode(b"\x00\x00\x00")
    for kwargs in ({"sample_rate": 0}, {"sample_rate": -1}, {"sample_rate": 2**32}):
        with pytest.raises(AudioFormatError, match="sample_rate"):
            wav_encode(b"", **kwargs)
    for channels in (0, -2, 65536):
        with pytest.raises(AudioFormatError, match="channels"):
            wav_encode(b"", channels=channels)
    with pytest.raises(AudioFormatError):
        wav_encode(np.zeros(4, np.int32))


# --- every variant, byte by byte ------------------------------------------------------


def test_float32_and_float64_are_converted_with_the_rule() -> None:
    x = np.concatenate([RNG.uniform(-1.3, 1.3, 2000), [1.0, -1.0, np.nan, np.inf, -np.inf, 0.5 / 32768]])
    for dtype, bits in ((np.float32, 32), (np.float64, 64)):
        xs = x.astype(dtype)
        raw = xs.astype(f"<f{bits // 8}").tobytes()
        data = riff(chunk(b"fmt ", fmt_chunk(3, 2, 48000, bits)), chunk(b"data", raw))
        out = wav_decode(data)
        assert (out.format, out.bits_per_sample, out.channels) == ("float", bits, 2)
        np.testing.assert_array_equal(pcm(out), ref_pcm16_from_float(xs))
        assert out.pcm16 == to_pcm16(xs)
        # A 2-byte chunk before fmt leaves the samples unaligned in memory: same result.
        shifted = riff(
            chunk(b"JUNK", b"ab"), chunk(b"fmt ", fmt_chunk(3, 2, 48000, bits)), chunk(b"data", raw)
        )
        assert wav_decode(shifted).pcm16 == out.pcm16


@pytest.mark.parametrize(
    ("sub", "bits", "dtype"), [(1, 16, "<i2"), (1, 32, "<i4"), (3, 32, "<f4"), (3, 64, "<f8")]
)
def test_wave_format_extensible(sub: int, bits: int, dtype: str) -> None:
    if dtype.startswith("<f"):
        x = RNG.uniform(-1, 1, 600).astype(dtype)
        want = ref_pcm16_from_float(x)
    else:
        x = RNG.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), 600).astype(dtype)
        want = ref_pcm16_from_int(x, bits)
    data = riff(chunk(b"fmt ", extensible_chunk(sub, 2, 32000, bits)), chunk(b"data", x.tobytes()))
    out = wav_decode(data)
    assert (out.sample_rate, out.channels, out.bits_per_sample) == (32000, 2, bits)
    np.testing.assert_array_equal(pcm(out), want)


def test_extensible_24_bit_in_32_bit_container_uses_the_container() -> None:
    v = RNG.integers(-(2**31), 2**31, 100).astype("<i4") & ~0xFF
    data = riff(chunk(b"fmt ", extensible_chunk(1, 1, 96000, 32, valid_bits=24)), chunk(b"data", v.tobytes()))
    np.testing.assert_array_equal(pcm(wav_decode(data)), ref_pcm16_from_int(v, 32))


def test_g711_wav_is_decoded() -> None:
    codes = bytes(range(256))
    for tag, name in ((7, "ulaw"), (6, "alaw")):
        data = riff(
            chunk(b"fmt ", fmt_chunk(tag, 1, 8000, 8)),
            chunk(b"fact", struct.pack("<I", 256)),
            chunk(b"data", codes),
        )
        out = wav_decode(data)
        assert out.format == name and out.num_frames == 256
        if name == "ulaw":
            assert out.pcm16 == ulaw_decode(codes)


def test_extra_chunks_odd_sizes_and_chunk_order() -> None:
    samples = RNG.integers(-32768, 32768, 300).astype("<i2")
    fmt = chunk(b"fmt ", fmt_chunk(1, 1, 22050, 16))
    data = chunk(b"data", samples.tobytes())
    variants = [
        riff(chunk(b"JUNK", b"\x00" * 28), fmt, chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00"), data),
        riff(chunk(b"bext", b"odd"), chunk(b"fact", b"\x2c\x01\x00\x00"), fmt, data),
        riff(data, chunk(b"LIST", b"a"), fmt),  # data before fmt, odd chunk between
        riff(fmt, chunk(b"cue ", b"12345"), data, chunk(b"LIST", b"trailing")),
        riff(chunk(b"fmt ", fmt_chunk(1, 1, 22050, 16) + b"\x00\x00"), data),  # fmt with cbSize
        riff(fmt, data, size=12345678),  # wrong RIFF size is ignored
    ]
    for v in variants:
        out = wav_decode(v)
        assert out.sample_rate == 22050
        np.testing.assert_array_equal(pcm(out), samples)


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF])
def test_streaming_headers_run_to_the_end_of_the_buffer(placeholder: int) -> None:
    samples = RNG.integers(-32768, 32768, 2 * 500).astype("<i2")
    header = (
        riff(chunk(b"fmt ", fmt_chunk(1, 2, 24000, 16)), size=placeholder)
        + b"data"
        + struct.pack("<I", placeholder)
    )
    out = wav_decode(header + samples.tobytes())
    np.testing.assert_array_equal(pcm(out), samples)
    # A trailing odd byte and a partial frame are dropped to a whole frame.
    out = wav_decode(header + samples.tobytes() + b"\x01\x02\x03")
    np.testing.assert_array_equal(pcm(out), samples)
    assert out.num_frames == 500


def test_data_overrunning_the_buffer_is_clamped_to_whole_frames() -> None:
    samples = RNG.integers(-32768, 32768, 2 * 100).astype("<i2")
    full = riff(chunk(b"fmt ", fmt_chunk(1, 2, 16000, 16)), chunk(b"data", samples.tobytes()))
    cut = full[: len(full) - 5]  # a download cut mid-frame
    out = wav_decode(cut)
    assert out.num_frames == 98
    np.testing.assert_array_equal(pcm(out), samples[: 98 * 2])


def test_many_tiny_chunks_are_walked() -> None:
    # 500k empty chunks before fmt: linear walk, no recursion, the audio is still found.
    samples = RNG.integers(-32768, 32768, 64).astype("<i2")
    junk = chunk(b"junk", b"") * 500_000
    out = wav_decode(riff(junk, chunk(b"fmt ", fmt_chunk(1, 1, 8000, 16)), chunk(b"data", samples.tobytes())))
    np.testing.assert_array_equal(pcm(out), samples)
    with pytest.raises(AudioFormatError, match="missing fmt"):
        wav_decode(riff(junk))


def test_input_kinds() -> None:
    data = wav_encode(RNG.integers(-100, 100, 64).astype(np.int16))
    want = wav_decode(data).pcm16
    for src in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert wav_decode(src).pcm16 == want


FMT16 = chunk(b"fmt ", fmt_chunk(1, 1, 8000, 16))
DATA = chunk(b"data", b"\x00\x00")

REJECTED = [
    (b"", "truncated"),
    (b"RIFF\x00\x00", "truncated"),
    (b"RIFX" + b"\x00" * 4 + b"WAVE", "RIFX"),
    (b"RF64" + b"\xff" * 4 + b"WAVE", "RF64"),
    (b"ID3\x03" + b"\x00" * 40, "not a WAV"),
    (b"RIFF\x04\x00\x00\x00AVI ", "not WAVE"),
    (riff(DATA), "missing fmt"),
    (riff(FMT16), "missing data"),
    (riff(FMT16, chunk(b"LIST", b"abc", size=1 << 30)), "missing data chunk \\(chunk 'LIST' overruns"),
    (riff(chunk(b"fmt ", fmt_chunk(1, 1, 8000, 16)[:12]), DATA), "too short"),
    (riff(b"fmt " + struct.pack("<I", 100) + fmt_chunk(1, 1, 8000, 16)), "overruns"),
    (riff(chunk(b"fmt ", fmt_chunk(2, 1, 8000, 4, block_align=256)), DATA), "ADPCM"),
    (riff(chunk(b"fmt ", fmt_chunk(0x55, 2, 44100, 0, block_align=1)), DATA), "MP3"),
    (riff(chunk(b"fmt ", fmt_chunk(1, 0, 8000, 16)), DATA), "0 channels"),
    (riff(chunk(b"fmt ", fmt_chunk(1, 1, 0, 16)), DATA), "0 Hz"),
    (riff(chunk(b"fmt ", fmt_chunk(1, 1, 8000, 12)), DATA), "bit depth"),
    (riff(chunk(b"fmt ", fmt_chunk(3, 1, 8000, 16)), DATA), "float bit depth"),
    (riff(chunk(b"fmt ", fmt_chunk(7, 1, 8000, 16)), DATA), "G.711"),
    (riff(chunk(b"fmt ", fmt_chunk(1, 2, 8000, 16, block_align=2)), DATA), "block align"),
    (riff(chunk(b"fmt ", extensible_chunk(1, 1, 8000, 16)[:30]), DATA), "EXTENSIBLE"),
    (riff(chunk(b"fmt ", extensible_chunk(1, 1, 8000, 16)[:-1] + b"\x00"), DATA), "GUID"),
    (riff(chunk(b"fmt ", extensible_chunk(0x11, 1, 8000, 16)), DATA), "IMA ADPCM"),
]


@pytest.mark.parametrize(("data", "problem"), REJECTED)
def test_rejections_are_audio_format_errors_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(AudioFormatError, match=problem):
        wav_decode(data)


def test_rejects_non_byte_buffers() -> None:
    with pytest.raises(TypeError):
        wav_decode("RIFF")  # type: ignore[arg-type]


def test_wav_audio_is_frozen_with_a_short_repr() -> None:
    out = wav_decode(wav_encode(np.zeros(48_000, np.int16), 48000, 2))
    r = repr(out)
    assert r.startswith("WavAudio(") and "sample_rate=48000" in r and "channels=2" in r
    assert len(r) < 200 and "\\x00" not in r
    assert out.duration_s == pytest.approx(0.5)
    with pytest.raises(AttributeError):
        out.sample_rate = 8000  # type: ignore[misc]
    with pytest.raises(TypeError):
        WavAudio()


# --- the recordings in tests/data --------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO)
def test_committed_recordings(name: str) -> None:
    from scipy.io import wavfile

    raw = data_path(name).read_bytes()
    out = wav_decode(raw)
    rate, ref = wavfile.read(io.BytesIO(raw))
    assert out.sample_rate == rate
    ref2 = ref.reshape(len(ref), -1)
    assert out.channels == ref2.shape[1] and out.num_frames == ref2.shape[0]
    if ref.dtype == np.float32:
        # lights_48k_stereo_f32.wav: numpy's conversion of the float data, interleaved.
        np.testing.assert_array_equal(pcm(out), ref_pcm16_from_float(ref2.ravel()))
        assert out.format == "float" and out.channels == 2
        # The right channel is at half level (see tests/data/README.md).
        left, right = pcm(out)[0::2].astype(float), pcm(out)[1::2].astype(float)
        assert np.dot(right, left) / np.dot(left, left) == pytest.approx(0.5, abs=0.01)
    else:
        assert ref.dtype == np.int16
        np.testing.assert_array_equal(pcm(out), ref2.ravel())
        with wave.open(io.BytesIO(raw)) as w:
            assert out.pcm16 == w.readframes(w.getnframes())
    assert out.duration_s == pytest.approx(ref2.shape[0] / rate)


# --- properties -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    channels=st.integers(1, 8),
    rate=st.integers(1, 2**32 - 1),
    frames=st.integers(0, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_encode_decode_round_trip(channels: int, rate: int, frames: int, seed: int) -> None:
    samples = np.random.default_rng(seed).integers(-32768, 32768, frames * channels).astype(np.int16)
    out = wav_decode(wav_encode(samples, rate, channels))
    assert (out.sample_rate, out.channels, out.num_frames) == (rate, channels, frames)
    assert out.pcm16 == samples.tobytes()


def decode_or_format_error(data: bytes) -> None:
    try:
        out = wav_decode(data)
    except AudioFormatError:
        return
    assert len(out.pcm16) == out.num_frames * out.channels * 2
    assert out.channels >= 1 and out.sample_rate >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_format_error(data: bytes) -> None:
    decode_or_format_error(data)
    decode_or_format_error(b"RIFF" + data)
    decode_or_format_error(b"RIFF\x00\x00\x00\x00WAVE" + data)


SEEDS = [
    riff(
        chunk(b"LIST", b"odd"),
        chunk(b"fmt ", extensible_chunk(3, 2, 48000, 32)),
        chunk(b"data", bytes(range(64))),
    ),
    riff(chunk(b"fmt ", fmt_chunk(1, 3, 8000, 24)), chunk(b"data", bytes(range(90)))),
    riff(chunk(b"fmt ", fmt_chunk(6, 1, 8000, 8)), chunk(b"data", bytes(range(33)), size=0xFFFFFFFF)),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 200),
)
def test_mutated_wavs_decode_or_raise_format_error(
    seed: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    m = bytearray(seed)
    for pos, val in edits:
        m[pos % len(m)] = val
    decode_or_format_error(bytes(m))
    decode_or_format_error(bytes(m[: len(m) - cut % len(m)]))
