"""DEBUG logging of the voice pipeline (logger "fastvoice"): stage timings and provider calls,
never the API key, auth headers, audio bytes or the spoken text."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fastvoice.testing import FakeOpenAIServer
from fastvoice.voice import AgentWorkflow, AudioInput, Pipeline, SimpleWorkflow, StreamedAudioInput
from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider
from voice_peers import speech

KEY = "sk-proj-CANARYKEY-0123456789abcdefXYZ"
HEARD = "what does the canary sing"
SAID = "You said: what does the canary sing."


def texts(caplog) -> list[str]:
    fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [fmt.format(r) for r in caplog.records if r.name.startswith("fastvoice")]


def assert_safe(caplog) -> None:
    for record in caplog.records:
        assert not any(isinstance(a, bytes | bytearray | memoryview) for a in record.args or ()), record.msg
    for line in texts(caplog):
        assert KEY not in line and KEY[-12:] not in line, line
        assert "Bearer" not in line and "Authorization" not in line, line
        assert "canary" not in line.lower(), line  # neither the transcript nor the reply text


async def test_a_turn_logs_stage_timings_and_provider_calls_without_secrets(caplog):
    caplog.set_level(logging.DEBUG, logger="fastvoice")
    async with FakeOpenAIServer(api_key=KEY) as server:
        server.stt_texts = [HEARD]
        async with (
            OpenAIVoiceModelProvider(api_key=KEY, base_url=server.base_url) as provider,
            AgentWorkflow(agent={"instructions": "Be brief."}, api_key=KEY, base_url=server.base_url) as wf,
        ):
            result = await Pipeline(wf, provider=provider).run(
                AudioInput(speech(), format="pcm16", sample_rate=16000)
            )
            audio = await result.collect_audio()
        assert server.errors == [] and result.turns[-1].reply == SAID and len(audio) > 0
    lines = texts(caplog)
    print("\n".join(lines))
    want = [
        "session started (provider OpenAIVoiceModelProvider, stt gpt-4o-transcribe, tts gpt-4o-mini-tts",
        "POST /audio/transcriptions (speech to text) attempt 1 -> HTTP 200",
        "stt OpenAIVoiceModelProvider/gpt-4o-transcribe: 0.50 s of audio (16000 bytes at 16000 Hz)"
        f" -> {len(HEARD)} chars",
        "responses request model gpt-4.1-mini: 1 input items, 0 function + 0 hosted tools",
        "POST /responses (the Responses API) attempt 1 -> HTTP 200",
        "workflow AgentWorkflow first text after",
        "workflow AgentWorkflow done in",
        "POST /audio/speech (text to speech) attempt 1 -> HTTP 200",
        f"tts OpenAIVoiceModelProvider/gpt-4o-mini-tts sentence 1 ({len(SAID)} chars):"
        f" {len(audio)} bytes, first audio",
        "turn 1 first audio after",
        "session ended after",
    ]
    for piece in want:
        assert any(piece in line for line in lines), piece
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "fastvoice")
    assert_safe(caplog)


async def test_failures_and_streamed_sessions_log_safely(caplog):
    caplog.set_level(logging.DEBUG, logger="fastvoice")
    async with FakeOpenAIServer(api_key="sk-the-other-key") as server:
        async with OpenAIVoiceModelProvider(api_key=KEY, base_url=server.base_url) as provider:
            result = await Pipeline(SimpleWorkflow(lambda t: t), provider=provider).run(
                AudioInput(speech(), format="pcm16", sample_rate=16000)
            )
            await result.collect_audio(raise_errors=False)
            assert result.errors  # 401: the key is wrong
    assert any(
        "POST /audio/transcriptions (speech to text) attempt 1 -> HTTP 401" in t for t in texts(caplog)
    )
    assert_safe(caplog)

    caplog.clear()
    async with FakeOpenAIServer(api_key=KEY) as server:
        server.stt_texts = [HEARD]
        async with OpenAIVoiceModelProvider(api_key=KEY, base_url=server.base_url) as provider:
            inp = StreamedAudioInput(sample_rate=24000)
            result = await Pipeline(SimpleWorkflow(lambda t: [f"{t}."]), provider=provider).run_streamed(inp)
            for pcm in (speech(0.6, 24000), bytes(48000)):
                for i in range(0, len(pcm), 960):
                    await inp.push(pcm[i : i + 960])
            await inp.close()
            await asyncio.wait_for(result.collect_audio(), 10)
        assert server.errors == [] and [t.transcript for t in result.turns] == [HEARD]
    lines = texts(caplog)
    for piece in [
        "transcription session (gpt-4o-transcribe) connecting",
        f"transcription session turn 1: {len(HEARD)} chars",
        f"stt turn transcribed ({len(HEARD)} chars)",
        "transcription session closed after 1 turns",
    ]:
        assert any(piece in line for line in lines), piece
    assert_safe(caplog)


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
async def test_no_voice_logs_above_debug_for_a_normal_turn(caplog, level):
    caplog.set_level(level, logger="fastvoice")
    async with FakeOpenAIServer(api_key=KEY) as server:
        async with OpenAIVoiceModelProvider(api_key=KEY, base_url=server.base_url) as provider:
            result = await Pipeline(SimpleWorkflow(lambda t: "Fine."), provider=provider).run(
                AudioInput(speech(), format="pcm16", sample_rate=16000)
            )
            await result.collect_audio()
    assert texts(caplog) == []
