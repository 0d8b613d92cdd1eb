"""Time to first audio: fastvoice `Pipeline` vs openai-agents' `VoicePipeline`, same fake server.

`FakeOpenAIServer` runs on its own event loop in a background thread (so its CPU is not
charged to the client) and answers STT, the Responses API and TTS after fixed delays. Each
round is one turn on the same WAV with the same agent (no tools). Reported per side, in
`extra_info`: the median first-audio time minus the providers' delays (what the client stack
adds; goal <= 10 ms for fastvoice) and the client thread's CPU time per turn.

Timed run: .venv/bin/python -m pytest benches/bench_voice_openai.py --benchmark-enable
--benchmark-only --benchmark-columns=median,iqr,ops -p no:randomly
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import statistics
import threading
import time
import wave
from typing import Any

import numpy as np
import pytest
from fastvoice import voice
from fastvoice.testing import FakeOpenAIServer
from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider

KEY = "sk-bench-0123456789abcdef"
STT_DELAY, LLM_DELAY, TTS_DELAY = 0.030, 0.030, 0.030
DELAYS = STT_DELAY + LLM_DELAY + TTS_DELAY
REPLY_TEXT = "hello there from the benchmark"
INSTRUCTIONS = "Answer briefly."


def _pcm(seconds: float = 1.0, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)


def _wav(pcm: np.ndarray, rate: int = 24000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class _ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = FakeOpenAIServer(api_key=KEY)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result()
        self.server.stt_texts = [REPLY_TEXT]
        self.server.stt_delay, self.server.llm_delay, self.server.tts_delay = STT_DELAY, LLM_DELAY, TTS_DELAY

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def fake():
    srv = _ServerThread()
    yield srv
    assert srv.server.errors == []
    srv.close()


async def _fastvoice_turn(
    base_url: str, wav: bytes, expected: bytes, kept: tuple[Any, Any] | None = None
) -> tuple[float, float]:
    """One turn; `kept` = (provider, agent) reused across turns (kept-alive connections)."""
    async with contextlib.AsyncExitStack() as stack:
        if kept is None:
            provider = await stack.enter_async_context(
                OpenAIVoiceModelProvider(api_key=KEY, base_url=base_url)
            )
            agent = await stack.enter_async_context(
                voice.AgentWorkflow(agent={"instructions": INSTRUCTIONS}, api_key=KEY, base_url=base_url)
            )
        else:
            provider, agent = kept
            agent.reset()
        pipeline = voice.Pipeline(agent, provider=provider)
        cpu0, t0 = time.thread_time(), time.perf_counter()
        result = await pipeline.run(voice.AudioInput(wav))
        first, parts = None, []
        async for event in result:
            if isinstance(event, voice.VoiceStreamEventAudio):
                first = first if first is not None else time.perf_counter() - t0
                parts.append(event.data)
        cpu = time.thread_time() - cpu0
    assert result.errors == [] and b"".join(parts) == expected
    assert first is not None
    return first, cpu


async def _agents_turn(base_url: str, pcm: np.ndarray, expected: bytes) -> tuple[float, float]:
    from agents import Agent, OpenAIResponsesModel
    from agents.voice import AudioInput, SingleAgentVoiceWorkflow, VoicePipeline, VoicePipelineConfig
    from agents.voice import OpenAIVoiceModelProvider as AgentsProvider
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)
    agent = Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        model=OpenAIResponsesModel(model="gpt-4.1-mini", openai_client=client),
    )
    config = VoicePipelineConfig(model_provider=AgentsProvider(openai_client=client), tracing_disabled=True)
    pipeline = VoicePipeline(workflow=SingleAgentVoiceWorkflow(agent), config=config)
    cpu0, t0 = time.thread_time(), time.perf_counter()
    result = await pipeline.run(AudioInput(buffer=pcm, frame_rate=24000))
    first, parts = None, []
    async for event in result.stream():
        if event.type == "voice_stream_event_audio" and event.data is not None:
            first = first if first is not None else time.perf_counter() - t0
            parts.append(np.asarray(event.data, dtype=np.int16).tobytes())
    cpu = time.thread_time() - cpu0
    await client.close()
    assert b"".join(parts) == expected
    assert first is not None
    return first, cpu


async def _floor_turn(base_url: str, wav: bytes, expected: bytes) -> tuple[float, float]:
    """The same three requests made back to back with bare aiohttp: the floor any client has
    (loopback HTTP, the server's timer overshoot, cross-thread wake-ups)."""
    import aiohttp

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        cpu0, t0 = time.thread_time(), time.perf_counter()
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="a.wav", content_type="audio/wav")
        form.add_field("model", "gpt-4o-transcribe")
        async with s.post(base_url + "/audio/transcriptions", data=form) as r:
            text = (await r.json())["text"]
        body = {"model": "m", "input": [{"role": "user", "content": text}], "stream": True}
        async with s.post(base_url + "/responses", json=body) as r:
            await r.read()
        speech = {"model": "m", "input": f"You said: {text}.", "voice": "nova", "response_format": "pcm"}
        async with s.post(base_url + "/audio/speech", json=speech) as r:
            chunk = await r.content.readany()
            first = time.perf_counter() - t0
            data = chunk + await r.read()
        cpu = time.thread_time() - cpu0
    assert data == expected
    return first, cpu


@pytest.mark.parametrize("side", ["floor-bare-aiohttp", "fastvoice", "fastvoice-kept-alive", "openai-agents"])
def test_time_to_first_audio(benchmark, fake, side):
    pytest.importorskip("agents.voice", reason="openai-agents is not installed")
    pcm = _pcm()
    wav = _wav(pcm)
    expected = fake.server.speech_audio(f"You said: {REPLY_TEXT}.")
    firsts: list[float] = []
    cpus: list[float] = []
    loop = asyncio.new_event_loop()
    kept: tuple[Any, Any] | None = None
    if side == "fastvoice-kept-alive":
        base = fake.server.base_url
        kept = (
            OpenAIVoiceModelProvider(api_key=KEY, base_url=base),
            voice.AgentWorkflow(agent={"instructions": INSTRUCTIONS}, api_key=KEY, base_url=base),
        )

    def turn() -> None:
        fake.server.stt_texts = [REPLY_TEXT]
        fake.server._stt_index = 0
        if side == "floor-bare-aiohttp":
            first, cpu = loop.run_until_complete(_floor_turn(fake.server.base_url, wav, expected))
        elif side.startswith("fastvoice"):
            first, cpu = loop.run_until_complete(_fastvoice_turn(fake.server.base_url, wav, expected, kept))
        else:
            first, cpu = loop.run_until_complete(_agents_turn(fake.server.base_url, pcm, expected))
        firsts.append(first)
        cpus.append(cpu)

    benchmark.group = "voice-openai: one turn, STT+LLM+TTS with 30 ms delays each"
    try:
        benchmark.pedantic(turn, rounds=15, iterations=1, warmup_rounds=2)
    finally:
        if kept is not None:
            loop.run_until_complete(kept[0].aclose())
            loop.run_until_complete(kept[1].aclose())
        loop.close()
    overhead_ms = (statistics.median(firsts) - DELAYS) * 1000
    benchmark.extra_info.update(
        {
            "first_audio_ms_median": round(statistics.median(firsts) * 1000, 2),
            "overhead_ms_median": round(overhead_ms, 2),
            "cpu_ms_per_turn_median": round(statistics.median(cpus) * 1000, 2),
        }
    )
    # First audio can never come before the providers' own delays have passed.
    assert min(firsts) >= DELAYS
