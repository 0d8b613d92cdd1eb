"""Bounded TTS read-ahead (`Config.max_buffered_audio_s`): a slow consumer holds a bounded
amount of synthesised audio, the synthesiser is not pulled further while the buffer is full,
and nothing is lost."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastvoice import audio
from fastvoice.testing import FakeOpenAIServer
from fastvoice.voice import (
    AudioInput,
    Config,
    Pipeline,
    SimpleWorkflow,
    VoiceStreamEventAudio,
)
from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider
from voice_peers import BYTES_PER_S, CountingTTS, FixedSTT, PeerProvider, long_text, sentence_audio, speech


@pytest.mark.parametrize(("limit_s", "concurrency"), [(1.0, 2), (0.5, 4), (None, 2)])
async def test_real_time_consumer_of_a_100_kB_reply_holds_a_bounded_read_ahead(limit_s, concurrency):
    text = long_text(100_000)
    tts = CountingTTS(chunk=4800)  # 100 ms per chunk
    config = Config(tts_concurrency=concurrency)
    if limit_s is not None:
        config.max_buffered_audio_s = limit_s
    limit = round(config.max_buffered_audio_s * BYTES_PER_S)
    pipeline = Pipeline(SimpleWorkflow(lambda _: text), config, PeerProvider(FixedSTT(), tts))
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000))
    consumed, ahead, tasks = 0, [], []
    before = asyncio.all_tasks()
    deadline = time.monotonic() + 2.0
    async with result:
        async for event in result:
            if isinstance(event, VoiceStreamEventAudio):
                ahead.append(tts.pulled - consumed)  # synthesised but not yet played
                consumed += len(event.data)
                await asyncio.sleep(len(event.data) / BYTES_PER_S)  # play it at real time
                tasks.append(len(asyncio.all_tasks() - before))
                if time.monotonic() > deadline:
                    break
        ahead.append(tts.pulled - consumed)
        per_sentence = [sum(map(len, sentence_audio(i, s, 4800))) for i, s in enumerate(tts.sentences)]
    print(
        f"limit {limit} B: consumed {consumed / BYTES_PER_S:.2f} s,"
        f" synthesised {tts.pulled / BYTES_PER_S:.2f} s,"
        f" max ahead {max(ahead)} B, {len(tts.sentences)} sentences started, at most {max(tasks)} tasks"
    )
    assert consumed >= BYTES_PER_S  # it did play for a while
    assert max(ahead) <= limit + tts.chunk  # the bound, plus at most one chunk
    assert max(ahead) >= limit - 2 * tts.chunk  # and the read-ahead is actually used
    # Only the sentences near the play position were started (the workflow is read lazily too).
    assert sum(per_sentence) <= consumed + limit + (concurrency + 1) * max(per_sentence)
    assert max(tasks) <= concurrency + 1  # the TTS tasks and the producer, not one per sentence


@pytest.mark.parametrize("dtype", [None, "float32"])
async def test_slow_consumer_gets_every_byte_in_order(dtype):
    text = long_text(3000)  # ~47 sentences
    tts = CountingTTS(chunk=480, delay=0.0005)
    config = Config(tts_concurrency=3, max_buffered_audio_s=0.05)  # a few chunks
    config.tts_settings.dtype = dtype
    pipeline = Pipeline(SimpleWorkflow(lambda _: text), config, PeerProvider(FixedSTT(), tts))
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=16000))
    got = bytearray()
    async for event in result:
        if isinstance(event, VoiceStreamEventAudio):
            got += event.data if dtype is None else audio.to_pcm16(event.data)
            await asyncio.sleep(0.001)
    expected = b"".join(c for i, s in enumerate(tts.sentences) for c in sentence_audio(i, s, 480))
    assert result.errors == []
    assert len(tts.sentences) == len(result.turns[-1].sentences) > 40
    assert bytes(got) == expected  # nothing lost, duplicated or reordered
    assert result._readahead.total == 0 and result._readahead.queued == 0  # the budget balances


async def test_openai_speech_stream_under_backpressure_arrives_whole():
    text = " ".join(f"Sentence {i} is spoken by the fake server." for i in range(12))
    async with FakeOpenAIServer(api_key="sk-test") as server:
        server.tts_chunk_bytes = 1000
        config = Config(tts_concurrency=2, max_buffered_audio_s=0.05)
        async with OpenAIVoiceModelProvider(api_key="sk-test", base_url=server.base_url) as openai:
            provider = PeerProvider(FixedSTT(), openai.get_tts_model(None))
            result = await Pipeline(SimpleWorkflow(lambda _: text), config, provider).run(
                AudioInput(speech(), format="pcm16", sample_rate=16000)
            )
            got = bytearray()
            async for event in result:
                if isinstance(event, VoiceStreamEventAudio):
                    got += event.data
                    await asyncio.sleep(0.0005)
        sentences = result.turns[-1].sentences
        assert result.errors == [] and server.errors == [] and len(sentences) == 12
        assert bytes(got) == b"".join(server.speech_audio(s) for s in sentences)


@pytest.mark.parametrize("bad", [0, -1.0, "5"])
def test_max_buffered_audio_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_buffered_audio_s"):
        Pipeline(
            SimpleWorkflow(lambda _: "hi"),
            Config(max_buffered_audio_s=bad),
            PeerProvider(FixedSTT(), CountingTTS()),
        )
