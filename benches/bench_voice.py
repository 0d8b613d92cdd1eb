"""Voice pipeline benchmarks.

- `voice-turn`: one turn through fastvoice's `Pipeline` and openai-agents' `VoicePipeline`
  with the same in-process providers (no network): the timed figure is the pipeline's own
  cost per turn (providers answer at once); `extra_info` adds the time to first audio minus
  the providers' own delays (STT, workflow and TTS each wait `DELAY`; their actual waits are
  measured and subtracted, so timer jitter cancels), and CPU time per turn.
- `voice-offline-stt` / `voice-offline-tts`: the offline providers' speed as a real-time
  factor (processing time / audio duration), next to PocketSphinx called directly.

Every benchmark asserts its output so it cannot rot; in the normal test run each runs once.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from _data import data_path
from fastvoice.voice import AudioInput, Pipeline, SimpleWorkflow, STTSettings, TTSSettings
from fastvoice.voice import VoiceStreamEventAudio as FvAudio
from fastvoice.voice.providers import STTModel, TTSModel, VoiceModelProvider

DELAY = 0.02  # each provider step's fixed latency in the first-audio runs
CHUNK = b"\x01\x00" * 480  # 20 ms of 24 kHz PCM16
N_CHUNKS = 10
REPLY = ["Hello there, it is nice to meet you. ", "How are you doing today?"]
EXPECTED_BYTES = 2 * N_CHUNKS * len(CHUNK)  # two sentences


class Delays:
    value = 0.0
    # The time each provider step really waited (a timer wakes up to ~1 ms late): the first
    # wait of each role, on the path to the first audio.
    spent: ClassVar[dict[str, float]] = {}


async def _wait(role: str) -> None:
    if Delays.value:
        t0 = time.perf_counter()
        await asyncio.sleep(Delays.value)
        Delays.spent.setdefault(role, time.perf_counter() - t0)


class FvSTT(STTModel):
    model_name = "bench-stt"  # type: ignore[assignment]

    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        await _wait("stt")
        return "hello world"


class FvTTS(TTSModel):
    model_name = "bench-tts"  # type: ignore[assignment]

    async def run(self, text: str, settings: TTSSettings) -> AsyncIterator[bytes]:
        await _wait("tts")
        for _ in range(N_CHUNKS):
            yield CHUNK


class FvProvider(VoiceModelProvider):
    def get_stt_model(self, name: str | None) -> STTModel:
        return FvSTT()

    def get_tts_model(self, name: str | None) -> TTSModel:
        return FvTTS()


async def _reply(text: str) -> AsyncIterator[str]:
    await _wait("llm")
    for piece in REPLY:
        yield piece


INPUT = np.zeros(24000, dtype=np.int16)


def _fastvoice_turn() -> Callable[[], Any]:
    pipeline = Pipeline(SimpleWorkflow(_reply), provider=FvProvider())

    async def turn() -> tuple[float, int]:
        t0 = time.perf_counter()
        first = 0.0
        n = 0
        async for event in await pipeline.run(AudioInput(INPUT, sample_rate=24000)):
            if isinstance(event, FvAudio):
                first = first or time.perf_counter() - t0
                n += len(event.data)
        return first, n

    return turn


def _agents_turn() -> Callable[[], Any]:
    voice = pytest.importorskip("agents.voice", reason="openai-agents (the comparison) is not installed")

    class AgSTT(voice.STTModel):  # type: ignore[misc]
        model_name = "bench-stt"

        async def transcribe(self, input: Any, settings: Any, *args: Any) -> str:
            await _wait("stt")
            return "hello world"

        async def create_session(self, *args: Any) -> Any:
            raise NotImplementedError

    class AgTTS(voice.TTSModel):  # type: ignore[misc]
        model_name = "bench-tts"

        async def run(self, text: str, settings: Any) -> AsyncIterator[bytes]:
            await _wait("tts")
            for _ in range(N_CHUNKS):
                yield CHUNK

    class AgWorkflow(voice.VoiceWorkflowBase):  # type: ignore[misc]
        def run(self, transcription: str) -> AsyncIterator[str]:
            return _reply(transcription)

    # Default settings, tracing off (it would try to export traces to OpenAI).
    pipeline = voice.VoicePipeline(
        workflow=AgWorkflow(),
        stt_model=AgSTT(),
        tts_model=AgTTS(),
        config=voice.VoicePipelineConfig(tracing_disabled=True),
    )

    async def turn() -> tuple[float, int]:
        t0 = time.perf_counter()
        first = 0.0
        n = 0
        result = await pipeline.run(voice.AudioInput(buffer=INPUT))
        async for event in result.stream():
            if event.type == "voice_stream_event_audio" and event.data is not None:
                first = first or time.perf_counter() - t0
                n += event.data.nbytes
        return first, n

    return turn


def _direct_turn() -> Callable[[], Any]:
    """The floor: the same provider calls in sequence by hand, no pipeline. Its first-audio
    figure is the event loop's own timer overshoot, which the pipelines pay too."""
    stt, tts = FvSTT(), FvTTS()

    async def turn() -> tuple[float, int]:
        t0 = time.perf_counter()
        first = 0.0
        n = 0
        text = await stt.transcribe(AudioInput(INPUT, sample_rate=24000), STTSettings())
        async for piece in _reply(text):
            async for chunk in tts.run(piece, TTSSettings()):
                first = first or time.perf_counter() - t0
                n += len(chunk)
        return first, n

    return turn


TURNS = {"direct-calls": _direct_turn, "fastvoice": _fastvoice_turn, "openai-agents": _agents_turn}


@pytest.mark.parametrize("impl", list(TURNS))
def test_turn(benchmark: Any, impl: str) -> None:
    turn = TURNS[impl]()
    loop = asyncio.new_event_loop()
    try:
        # First audio with provider delays: the pipeline's own share is what is left after
        # the providers' actual waits on the way (STT, then the workflow, then the first TTS).
        Delays.value = DELAY
        runs = 3 if benchmark.disabled else 30
        overheads = []
        for _ in range(runs):
            Delays.spent = {}
            first, n = loop.run_until_complete(turn())
            assert n == EXPECTED_BYTES and set(Delays.spent) == {"stt", "llm", "tts"}
            overheads.append(first - sum(Delays.spent.values()))
        # Pipeline cost per turn with instant providers (the timed figure), and its CPU time.
        Delays.value = 0.0
        cpu0, turns = time.process_time(), 0

        def one() -> tuple[float, int]:
            nonlocal turns
            turns += 1
            return loop.run_until_complete(turn())  # type: ignore[no-any-return]

        benchmark.group = "voice-turn"
        first, n = benchmark(one)
        assert n == EXPECTED_BYTES and first > 0
        benchmark.extra_info["first_audio_overhead_ms_median"] = round(statistics.median(overheads) * 1e3, 3)
        benchmark.extra_info["cpu_ms_per_turn"] = round((time.process_time() - cpu0) / turns * 1e3, 3)
    finally:
        Delays.value = 0.0
        loop.close()
    assert statistics.median(overheads) < 0.05  # sanity: no hidden buffering delay


@pytest.mark.parametrize("impl", ["fastvoice-local", "pocketsphinx-direct"])
def test_offline_stt(benchmark: Any, impl: str) -> None:
    pytest.importorskip("pocketsphinx", reason="the [local] extra is not installed")
    from fastvoice import audio
    from fastvoice.voice.providers.local import LocalSTTModel

    data = data_path("voice_sample_24k.wav").read_bytes()
    clip = AudioInput(data)
    duration = clip.duration_s
    if impl == "fastvoice-local":
        stt = LocalSTTModel()
        loop = asyncio.new_event_loop()

        def run() -> str:
            return loop.run_until_complete(stt.transcribe(AudioInput(data), STTSettings()))
    else:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]
        from scipy.signal import resample_poly

        decoder = Decoder(samprate=16000, loglevel="FATAL")
        loop = asyncio.new_event_loop()

        def run() -> str:
            wav = audio.wav_decode(data)
            x = np.frombuffer(wav.pcm16, dtype="<i2").astype(np.float32)
            g = math.gcd(wav.sample_rate, 16000)
            y = resample_poly(x, 16000 // g, wav.sample_rate // g).clip(-32768, 32767).astype(np.int16)
            decoder.start_utt()
            decoder.process_raw(y.tobytes(), full_utt=True)
            decoder.end_utt()
            return str(decoder.hyp().hypstr)

    run()  # load the model outside the timing
    try:
        benchmark.group = "voice-offline-stt"
        text = benchmark(run)
    finally:
        loop.close()
    assert "wonderful day" in text
    benchmark.extra_info["audio_s"] = round(duration, 3)
    if benchmark.stats is not None:
        benchmark.extra_info["rtf"] = round(benchmark.stats.stats.median / duration, 4)


def test_offline_tts(benchmark: Any) -> None:
    pytest.importorskip("espeakng_loader", reason="the [local] extra is not installed")
    from fastvoice.voice.providers.local import LocalTTSModel

    tts = LocalTTSModel()
    loop = asyncio.new_event_loop()
    text = "The quick brown fox jumps over the lazy dog, and then it runs away into the forest."

    async def synth() -> tuple[float, int]:
        t0 = time.perf_counter()
        first, n = 0.0, 0
        async for chunk in tts.run(text, TTSSettings()):
            first = first or time.perf_counter() - t0
            n += len(chunk)
        return first, n

    try:
        benchmark.group = "voice-offline-tts"
        first, n = benchmark(lambda: loop.run_until_complete(synth()))
    finally:
        loop.close()
    duration = n / 2 / 24000
    assert 3.0 < duration < 8.0 and first > 0
    benchmark.extra_info["audio_s"] = round(duration, 3)
    benchmark.extra_info["first_chunk_ms"] = round(first * 1e3, 3)
    if benchmark.stats is not None:
        benchmark.extra_info["rtf"] = round(benchmark.stats.stats.median / duration, 5)
