"""Stopping a pipeline run early: cancelling the consumer task, `await result.aclose()` or
`async with result:` stop STT, the workflow and TTS at once, and leave no task behind.

The read-ahead is made huge here so that only the cancellation (not backpressure) can stop
the synthesiser.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastvoice.testing import FakeOpenAIServer
from fastvoice.voice import (
    AudioInput,
    Config,
    Pipeline,
    SimpleWorkflow,
    StreamedAudioInput,
    TurnDetection,
    VoiceStreamEventAudio,
)
from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider
from voice_peers import CountingTTS, FixedSTT, PeerProvider, long_text, speech

UNBOUNDED = Config(max_buffered_audio_s=1e6)
SERVER_SIDE = ("aiohttp", str(Path("fastvoice") / "testing"))  # the fake server's own tasks


def leftover(before: set[asyncio.Task]) -> list[asyncio.Task]:
    """Tasks started since `before` that are still pending (the fake server's excluded)."""
    out = []
    for task in asyncio.all_tasks() - before - {asyncio.current_task()}:
        code = getattr(task.get_coro(), "cr_code", None)
        if task.done() or (code is not None and any(s in code.co_filename for s in SERVER_SIDE)):
            continue
        out.append(task)
    return out


async def settle(before: set[asyncio.Task], timeout: float = 3.0) -> list[asyncio.Task]:
    deadline = time.monotonic() + timeout
    while (left := leftover(before)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return left


async def assert_stopped(tts: CountingTTS, before: set[asyncio.Task]) -> None:
    left = await settle(before)
    assert left == [], [t.get_coro() for t in left]
    made = tts.chunks
    await asyncio.sleep(0.3)
    print(f"{made} TTS chunks made in all, {tts.chunks - made} after the stop")
    assert tts.chunks == made  # no TTS work after the stop
    assert tts.closed == len(tts.sentences)  # every TTS stream was closed, none left suspended


async def consume(result, n: int, seen: list, play: float) -> None:
    async for event in result:
        if isinstance(event, VoiceStreamEventAudio):
            seen.append(event)
            if len(seen) == n:
                await asyncio.Event().wait()  # a consumer that goes on with other work
            await asyncio.sleep(play)


@pytest.mark.parametrize(
    ("how", "play", "tts_delay"),
    [
        ("cancel", 0.01, 0.0),  # cancelled while playing (outside the result's iterator)
        ("cancel", 0.0, 0.02),  # cancelled while waiting for the next event
        ("aclose", 0.0, 0.0),
    ],
)
async def test_single_turn_stops_when_consumer_is_cancelled_or_aclose(how, play, tts_delay):
    before = asyncio.all_tasks()
    tts = CountingTTS(chunk=480, delay=tts_delay)
    pipeline = Pipeline(
        SimpleWorkflow(lambda _: long_text(100_000)), UNBOUNDED, PeerProvider(FixedSTT(), tts)
    )
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000))
    seen: list = []
    consumer = asyncio.create_task(
        consume(result, 5, seen, play) if how == "cancel" else consume(result, 5, seen, 0)
    )
    while len(seen) < 5:
        await asyncio.sleep(0.005)
    if how == "cancel":
        if tts_delay:  # make sure the consumer is parked inside the result's iterator
            await asyncio.sleep(0)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    else:
        await result.aclose()
        await result.aclose()  # idempotent
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    await assert_stopped(tts, before)
    assert result.done


async def test_async_with_result_stops_the_session_on_exit():
    before = asyncio.all_tasks()
    tts = CountingTTS(chunk=480)
    pipeline = Pipeline(
        SimpleWorkflow(lambda _: long_text(100_000)), UNBOUNDED, PeerProvider(FixedSTT(), tts)
    )
    n = 0
    async with await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000)) as result:
        async for event in result:
            n += isinstance(event, VoiceStreamEventAudio)
            if n == 3:
                break
    assert result.done
    await assert_stopped(tts, before)


async def test_streaming_workflow_is_closed_on_cancel():
    closed = asyncio.Event()

    async def endless(text):
        try:
            i = 0
            while True:
                yield f"Piece {i} of an endless reply. "
                i += 1
                await asyncio.sleep(0)
        finally:
            closed.set()

    before = asyncio.all_tasks()
    tts = CountingTTS(chunk=480)
    pipeline = Pipeline(SimpleWorkflow(endless), UNBOUNDED, PeerProvider(FixedSTT(), tts))
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000))
    seen: list = []
    consumer = asyncio.create_task(consume(result, 4, seen, 0.005))
    while len(seen) < 4:
        await asyncio.sleep(0.005)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await asyncio.wait_for(closed.wait(), 2.0)  # the workflow's generator was closed, not left to GC
    await assert_stopped(tts, before)


async def feed_one_turn(inp: StreamedAudioInput, rate: int) -> None:
    step = rate // 50 * 2
    for pcm in (bytes(rate), speech(0.6, rate), bytes(rate * 2)):  # silence, speech, 1 s silence
        for i in range(0, len(pcm), step):
            await inp.push(pcm[i : i + step])
    # the input stays open: only the cancellation can end the session


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_streamed_input_local_turns_stop_on_cancel(how):
    before = asyncio.all_tasks()
    tts = CountingTTS(chunk=480)
    # The fed "speech" is a tone, which the energy VAD takes for speech and Silero rightly does not.
    config = Config(max_buffered_audio_s=1e6, turn_detection=TurnDetection(engine="energy"))
    pipeline = Pipeline(SimpleWorkflow(lambda _: long_text(100_000)), config, PeerProvider(FixedSTT(), tts))
    inp = StreamedAudioInput(sample_rate=16000)
    result = await pipeline.run_streamed(inp)
    await feed_one_turn(inp, 16000)
    seen: list = []
    consumer = asyncio.create_task(consume(result, 5, seen, 0.001))
    deadline = time.monotonic() + 5
    while len(seen) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert len(seen) == 5, result.errors
    if how == "aclose":
        await result.aclose()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await assert_stopped(tts, before)


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_streamed_input_openai_transcription_session_stops_on_cancel(how):
    async with FakeOpenAIServer(api_key="sk-test") as server:
        server.stt_texts = ["tell me a long story"]
        async with OpenAIVoiceModelProvider(api_key="sk-test", base_url=server.base_url) as openai:
            before = asyncio.all_tasks()
            tts = CountingTTS(chunk=480)
            provider = PeerProvider(openai.get_stt_model(None), tts)
            pipeline = Pipeline(SimpleWorkflow(lambda _: long_text(100_000)), UNBOUNDED, provider)
            inp = StreamedAudioInput(sample_rate=24000)
            result = await pipeline.run_streamed(inp)
            await feed_one_turn(inp, 24000)
            seen: list = []
            consumer = asyncio.create_task(consume(result, 5, seen, 0.001))
            deadline = time.monotonic() + 5
            while len(seen) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert len(seen) == 5, (result.errors, server.errors)
            if how == "aclose":
                await result.aclose()
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await assert_stopped(tts, before)
            assert server.errors == []


async def test_offline_espeak_tts_stops_on_cancel():
    from fastvoice.voice.providers.local import LocalTTSModel, _Espeak

    before = asyncio.all_tasks()
    tts = LocalTTSModel()
    pipeline = Pipeline(
        SimpleWorkflow(lambda _: long_text(100_000)), UNBOUNDED, PeerProvider(FixedSTT(), tts)
    )
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000))
    seen: list = []
    consumer = asyncio.create_task(consume(result, 5, seen, 0.001))
    while len(seen) < 5:
        await asyncio.sleep(0.005)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    left = await settle(before)
    assert left == [], [t.get_coro() for t in left]
    # eSpeak's synthesis thread was told to stop: the engine is free again at once.
    assert await asyncio.to_thread(_Espeak.lock.acquire, timeout=2.0)
    _Espeak.lock.release()
    assert result.done
