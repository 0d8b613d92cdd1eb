"""Resampling benchmarks: fastvoice's streaming Resampler next to soxr and scipy.

Groups hold one job each (a rate pair); competitors sit side by side:
- ``stream 10x20 ms``: ten 20 ms float32 chunks of an ongoing stream per round (divide
  by 10 for the per-chunk time; ten, because soxr's stream returns output in ~35 ms
  bursts, so single calls alternate between cheap and expensive). fastvoice
  ``high`` / ``low_latency`` and ``soxr.ResampleStream(quality="HQ")`` are stateful;
  ``scipy.signal.resample_poly`` cannot stream, so it resamples each chunk on its own
  (zero-padded edges: it is a speed reference, not a usable streaming method).
- ``clip 10 s``: a whole clip, ``fastvoice.audio.resample`` vs ``soxr.resample`` vs
  ``resample_poly``.

Every benchmark asserts its output: the input is two tones with a whole number of
cycles per chunk, so each output chunk must be those tones at the output rate; a
least-squares fit gives the SNR, checked against each method's quality level.
``extra_info`` records each method's delay. Timed run:
    .venv/bin/python -m pytest benches/bench_resample.py --benchmark-enable --benchmark-only \
        --benchmark-columns=median,iqr,ops -p no:randomly
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import soxr
from fastvoice.audio import Resampler, resample
from scipy.signal import resample_poly

PAIRS = [(48000, 24000), (24000, 16000), (16000, 24000), (44100, 24000)]
TONES = (1000.0, 3000.0)  # whole cycles per 20 ms; below 0.45 x the lowest Nyquist here


def tone_chunk(rate: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * TONES[0] * t) + 0.2 * np.sin(2 * np.pi * TONES[1] * t)).astype(
        np.float32
    )


def tone_snr_db(y: np.ndarray, rate: int) -> float:
    """SNR of `y` against its best fit by the two tones (any phase) at `rate`."""
    t = np.arange(len(y)) / rate
    basis = np.stack([f(2 * np.pi * tone * t) for tone in TONES for f in (np.sin, np.cos)], 1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    fit = basis @ coef
    return float(10 * np.log10(np.sum(fit**2) / np.sum((y - fit) ** 2)))


def emission_latency_ms(push: Callable[[np.ndarray], np.ndarray], in_rate: int) -> float:
    """Feed an impulse then zeros one sample per call; return how much input time passes
    after the impulse until the output sample carrying its peak is returned (algorithmic
    delay plus any internal block buffering: the latency a 1-sample stream would see)."""
    i0 = in_rate // 20
    emitted_at: list[int] = []
    outs = []
    for i in range(i0 + in_rate // 10):
        y = push(np.array([1.0 if i == i0 else 0.0], np.float32))
        outs.append(y)
        emitted_at += [i] * len(y)
    y = np.concatenate(outs)
    return (emitted_at[int(np.argmax(np.abs(y)))] - i0) / in_rate * 1000


def run(benchmark: Any, group: str, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    benchmark.group = group
    benchmark.extra_info["impl"] = name
    return benchmark(fn, *args)


def stream_methods(
    in_rate: int, out_rate: int
) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]]:
    """name -> (per-chunk function on fresh state, SNR floor)."""
    g = np.gcd(in_rate, out_rate)
    hi = Resampler(in_rate, out_rate, quality="high")
    ll = Resampler(in_rate, out_rate, quality="low_latency")
    sx = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
    return {
        "fastvoice high": (hi.process, 80.0),
        "fastvoice low_latency": (ll.process, 50.0),
        "soxr HQ stream": (sx.resample_chunk, 80.0),
        "scipy resample_poly per chunk": (lambda x: resample_poly(x, out_rate // g, in_rate // g), 20.0),
    }


STREAM_CASES = [(a, b, name) for a, b in PAIRS for name in stream_methods(a, b)]


CHUNKS_PER_CALL = 10  # soxr emits in ~35 ms bursts (every other 20 ms call returns nothing)


def ten_chunks(fn: Callable[[np.ndarray], np.ndarray], chunk: np.ndarray) -> list[np.ndarray]:
    return [fn(chunk) for _ in range(CHUNKS_PER_CALL)]


@pytest.mark.parametrize(("in_rate", "out_rate", "name"), STREAM_CASES)
def test_stream_20ms(benchmark: Any, in_rate: int, out_rate: int, name: str) -> None:
    fn, floor = stream_methods(in_rate, out_rate)[name]
    chunk = tone_chunk(in_rate, in_rate // 50)
    ten_chunks(fn, chunk)  # past the start-up transient and any initial buffering
    outs = run(benchmark, f"stream 10x20 ms {in_rate}->{out_rate}", name, ten_chunks, fn, chunk)
    if name.startswith("scipy"):
        last = outs[-1]
        out = last[len(last) // 4 : -len(last) // 4]  # its chunk edges are zero-padded
    else:
        out = np.concatenate(outs)
        assert abs(len(out) - CHUNKS_PER_CALL * out_rate // 50) <= out_rate // 20  # <= 50 ms buffered
    assert out.dtype == np.float32
    snr = tone_snr_db(out, out_rate)
    assert snr >= floor, f"{name}: {snr:.1f} dB"
    benchmark.extra_info["snr_db"] = round(snr, 1)
    fresh = stream_methods(in_rate, out_rate)[name][0]
    if not name.startswith("scipy"):
        benchmark.extra_info["latency_ms_1sample"] = round(emission_latency_ms(fresh, in_rate), 3)
    if name.startswith("fastvoice"):
        quality = name.split()[1]
        benchmark.extra_info["delay_ms"] = round(Resampler(in_rate, out_rate, quality=quality).delay_ms, 3)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_stream_20ms_int16(benchmark: Any, in_rate: int, out_rate: int) -> None:
    r = Resampler(in_rate, out_rate)
    chunk = (tone_chunk(in_rate, in_rate // 50) * 32768).astype(np.int16)
    ten_chunks(r.process, chunk)
    outs = run(
        benchmark,
        f"stream 10x20 ms {in_rate}->{out_rate}",
        "fastvoice high int16",
        ten_chunks,
        r.process,
        chunk,
    )
    out = np.concatenate(outs)
    assert out.dtype == np.int16
    assert tone_snr_db(out.astype(np.float64) / 32768, out_rate) >= 70  # PCM16 rounding bound


CLIP_METHODS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "fastvoice resample high": lambda x, a, b: resample(x, a, b),
    "fastvoice resample low_latency": lambda x, a, b: resample(x, a, b, "low_latency"),
    "soxr.resample HQ": lambda x, a, b: soxr.resample(x, a, b, quality="HQ"),
    "scipy resample_poly": lambda x, a, b: resample_poly(x, b // np.gcd(a, b), a // np.gcd(a, b)).astype(
        np.float32
    ),
}


@pytest.mark.parametrize("name", list(CLIP_METHODS))
@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 24000), (44100, 16000)])
def test_clip_10s(benchmark: Any, in_rate: int, out_rate: int, name: str) -> None:
    x = np.tile(tone_chunk(in_rate, in_rate // 50), 500)
    out = run(benchmark, f"clip 10 s {in_rate}->{out_rate}", name, CLIP_METHODS[name], x, in_rate, out_rate)
    assert len(out) == 10 * out_rate
    mid = out[out_rate:-out_rate]
    assert tone_snr_db(mid, out_rate) >= (50 if "low_latency" in name or "scipy" in name else 80)
