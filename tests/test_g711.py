"""G.711 μ-law / A-law against the ITU-T formulas, and against CPython's audioop where present."""

import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fastvoice.audio import AudioFormatError, alaw_decode, alaw_encode, to_pcm16, ulaw_decode, ulaw_encode


def load_audioop() -> ModuleType | None:
    """audioop exists up to Python 3.12 and warns on import; it is a second, external reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


AUDIOOP = load_audioop()
needs_audioop = pytest.mark.skipif(AUDIOOP is None, reason="audioop was removed in Python 3.13")

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def itu_ulaw(code: int) -> int:
    """G.711 Table 2 (μ-law): bits are transmitted inverted; sign, 3-bit segment, 4-bit step.
    Reconstruction magnitude in 14-bit units is (2*step + 33) * 2**segment - 33."""
    c = code ^ 0xFF
    negative = c >> 7
    segment = (c >> 4) & 7
    step = c & 15
    magnitude = ((2 * step + 33) * 2**segment - 33) * 4  # 14-bit -> 16-bit
    return -magnitude if negative else magnitude


def itu_alaw(code: int) -> int:
    """G.711 Table 1 (A-law): even bits inverted (XOR 0x55); sign bit 1 means positive.
    Reconstruction magnitude in 13-bit units: 2*step + 1 in segment 0, else (2*step + 33) * 2**(segment-1)."""
    c = code ^ 0x55
    positive = c >> 7
    segment = (c >> 4) & 7
    step = c & 15
    m13 = 2 * step + 1 if segment == 0 else (2 * step + 33) * 2 ** (segment - 1)
    magnitude = m13 * 8  # 13-bit -> 16-bit
    return magnitude if positive else -magnitude


def decoded(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.int64)


Codec = Callable[[Any], bytes]
Reference = Callable[[int], int]

LAWS: list[tuple[str, Codec, Codec, Reference]] = [
    ("ulaw", ulaw_encode, ulaw_decode, itu_ulaw),
    ("alaw", alaw_encode, alaw_decode, itu_alaw),
]


@pytest.mark.parametrize(("name", "encode", "decode", "ref"), LAWS)
def test_decode_matches_itu_formula_on_all_codes(
    name: str, encode: Codec, decode: Codec, ref: Reference
) -> None:
    assert decoded(decode(ALL_CODES)).tolist() == [ref(c) for c in range(256)]


@needs_audioop
def test_decode_and_encode_match_audioop_exactly() -> None:
    assert AUDIOOP is not None
    assert ulaw_decode(ALL_CODES) == AUDIOOP.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES) == AUDIOOP.alaw2lin(ALL_CODES, 2)
    pcm = ALL_PCM.tobytes()
    assert ulaw_encode(pcm) == AUDIOOP.lin2ulaw(pcm, 2)
    assert alaw_encode(pcm) == AUDIOOP.lin2alaw(pcm, 2)


@pytest.mark.parametrize(("name", "encode", "decode", "ref"), LAWS)
def test_encode_inverts_decode(name: str, encode: Codec, decode: Codec, ref: Reference) -> None:
    back = encode(decode(ALL_CODES))
    for code in range(256):
        if name == "ulaw" and code == 0x7F:
            # μ-law has two zeros (0xFF = +0, 0x7F = -0); zero encodes as +0.
            assert back[code] == 0xFF
        else:
            assert back[code] == code, hex(code)


@pytest.mark.parametrize(("name", "encode", "decode", "ref"), LAWS)
def test_quantiser_is_monotonic_with_bounded_error(
    name: str, encode: Codec, decode: Codec, ref: Reference
) -> None:
    codes = np.frombuffer(encode(ALL_PCM.tobytes()), np.uint8)
    y = decoded(decode(codes.tobytes()))
    x = ALL_PCM.astype(np.int64)
    assert np.all(np.diff(y) >= 0), "decode(encode(x)) must be non-decreasing in x"
    # The error is at most half the gap between the two reconstruction levels around
    # the output (the quantiser's step there), plus the 14-bit (μ) / 13-bit (A)
    # input truncation. Past the largest level the encoder clips.
    levels = np.unique(decoded(decode(ALL_CODES)))
    idx = np.searchsorted(levels, y)
    lower_gap = levels[idx] - levels[np.maximum(idx - 1, 0)]
    upper_gap = levels[np.minimum(idx + 1, len(levels) - 1)] - levels[idx]
    step = np.maximum(lower_gap, upper_gap)
    truncation = 4 if name == "ulaw" else 8
    inside = np.abs(x) <= levels.max()
    err = np.abs(y - x)
    assert np.all(err[inside] <= step[inside] // 2 + truncation)
    assert np.all(y[x > levels.max()] == levels.max())
    assert np.all(y[x < levels.min()] == levels.min())


def test_alaw_is_sign_symmetric() -> None:
    # A-law mirrors negative samples with one's complement: x and -1-x differ only in the sign bit.
    pos = np.frombuffer(alaw_encode(ALL_PCM[ALL_PCM >= 0].tobytes()), np.uint8)
    neg = np.frombuffer(alaw_encode((-1 - ALL_PCM[ALL_PCM >= 0]).astype(np.int16).tobytes()), np.uint8)
    np.testing.assert_array_equal(pos ^ 0x80, neg)


@pytest.mark.parametrize(("name", "encode", "decode", "ref"), LAWS)
def test_input_kinds(name: str, encode: Codec, decode: Codec, ref: Reference) -> None:
    rng = np.random.default_rng(11)
    pcm = rng.integers(-32768, 32768, 4000).astype(np.int16)
    codes = encode(pcm.tobytes())
    assert len(codes) == len(pcm)
    assert encode(pcm) == codes
    assert encode(bytearray(pcm.tobytes())) == codes
    assert encode(memoryview(pcm.tobytes())) == codes
    f = rng.uniform(-1.1, 1.1, 4000).astype(np.float32)
    assert encode(f) == encode(to_pcm16(f))
    assert encode(f.astype(np.float64)) == encode(to_pcm16(f.astype(np.float64)))
    pcm_back = decode(codes)
    assert decode(bytearray(codes)) == pcm_back
    assert decode(memoryview(codes)) == pcm_back
    assert decode(np.frombuffer(codes, np.uint8)) == pcm_back
    assert encode(b"") == b"" and decode(b"") == b""


@pytest.mark.parametrize(("name", "encode", "decode", "ref"), LAWS)
def test_bad_input_raises(name: str, encode: Codec, decode: Codec, ref: Reference) -> None:
    with pytest.raises(AudioFormatError, match="even number"):
        encode(b"\x00\x00\x00")
    with pytest.raises(AudioFormatError, match="bytes"):
        decode(np.zeros(4, np.int16))
    with pytest.raises(AudioFormatError):
        encode(np.zeros(4, np.int64))
    with pytest.raises(TypeError):
        decode("not audio")


def test_large_inputs_from_many_threads() -> None:
    rng = np.random.default_rng(5)
    pcm = rng.integers(-32768, 32768, 400_000).astype(np.int16)
    want = ulaw_encode(pcm)
    want_back = ulaw_decode(want)
    bad: list[int] = []

    def work() -> None:
        for _ in range(5):
            codes = ulaw_encode(pcm)
            if codes != want or ulaw_decode(codes) != want_back:
                bad.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
