"""OpenAI providers and AgentWorkflow against FakeOpenAIServer (a real aiohttp server on 127.0.0.1).

References are independent of the code under test: the audio the server streamed (its own
`speech_audio`), stdlib `wave`, and the `openai` package's param/event types through pydantic.
"""

from __future__ import annotations

import functools
import io
import json
import wave

import numpy as np
import pydantic
import pytest
from _data import data_path
from fastvoice import telemetry, voice
from fastvoice.realtime import function_tool
from fastvoice.testing import FakeOpenAIServer, FakeResponse
from fastvoice.voice.providers import resolve_provider
from fastvoice.voice.providers._http import RetryPolicy, sse_events
from fastvoice.voice.providers.openai import (
    OpenAISTTStatusError,
    OpenAITTSStatusError,
    OpenAIVoiceModelProvider,
)

KEY = "sk-test-0123456789abcdef"
FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)


def _wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 300 * t) * 10000).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


async def _events(result: voice.StreamedAudioResult) -> list[voice.VoiceStreamEvent]:
    return [event async for event in result]


def _audio(events: list[voice.VoiceStreamEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, voice.VoiceStreamEventAudio))


def _lifecycle(events: list[voice.VoiceStreamEvent]) -> list[str]:
    return [e.event for e in events if isinstance(e, voice.VoiceStreamEventLifecycle)]


@pytest.fixture
async def server():
    async with FakeOpenAIServer(api_key=KEY) as srv:
        yield srv
        assert srv.errors == []


@pytest.fixture
async def provider(server):
    async with OpenAIVoiceModelProvider(api_key=KEY, base_url=server.base_url, retry=FAST) as p:
        yield p


async def test_single_turn_sends_a_valid_wav_and_streams_the_servers_audio(server, provider):
    server.stt_texts = ["turn on the lights"]
    server.tts_chunk_bytes = 1000
    server.tts_chunk_interval = 0.005  # separate reads, so streaming is observable
    echo = voice.SimpleWorkflow(lambda text: [f"You said {text}."])
    config = voice.Config(stt_settings=voice.STTSettings(language="en", prompt="lights"))
    result = await voice.Pipeline(echo, config, provider=provider).run(voice.AudioInput(_wav(rate=16000)))
    events = await _events(result)
    assert _lifecycle(events) == ["turn_started", "turn_ended", "session_ended"]
    assert _audio(events) == server.speech_audio("You said turn on the lights.")
    assert sum(isinstance(e, voice.VoiceStreamEventAudio) for e in events) > 5  # streamed, not buffered
    [stt] = [r for r in server.requests if r.path == "/audio/transcriptions"]
    assert stt.body["model"] == "gpt-4o-transcribe" and stt.body["language"] == "en"
    assert stt.body["prompt"] == "lights" and stt.body["response_format"] == "json"
    with wave.open(io.BytesIO(stt.body["file"])) as w:  # the uploaded file, read by the stdlib
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 8000)
    [tts] = [r for r in server.requests if r.path == "/audio/speech"]
    assert tts.body == {
        "model": "gpt-4o-mini-tts",
        "input": "You said turn on the lights.",
        "voice": "nova",
        "response_format": "pcm",
    }
    assert KEY not in repr(provider) and tts.authorization is not None and KEY not in tts.authorization


async def test_stt_500_then_success_is_retried(server, provider):
    server.stt_texts = ["hello there"]
    server.fail("/audio/transcriptions", 500, times=1)
    wf = voice.SimpleWorkflow(lambda text: text)
    result = await voice.Pipeline(wf, provider=provider).run(voice.AudioInput(_wav()))
    events = await _events(result)
    assert result.errors == []
    assert server.count("/audio/transcriptions") == 2
    assert result.turns[0].transcript == "hello there"
    assert _audio(events) == server.speech_audio("hello there")


async def test_stt_retries_are_bounded(server, provider):
    server.fail("/audio/transcriptions", 503, times=10)
    result = await voice.Pipeline(voice.SimpleWorkflow(str), provider=provider).run(voice.AudioInput(_wav()))
    events = await _events(result)
    [err] = result.errors
    assert isinstance(err, OpenAISTTStatusError) and err.status == 503
    assert server.count("/audio/transcriptions") == 1 + FAST.max_retries
    assert _lifecycle(events)[-1] == "session_ended"


async def test_stt_401_is_a_clear_error_without_retry(server):
    wrong = "sk-wrong-key-abcdefghijklmnop"
    async with OpenAIVoiceModelProvider(api_key=wrong, base_url=server.base_url, retry=FAST) as provider:
        result = await voice.Pipeline(voice.SimpleWorkflow(str), provider=provider).run(
            voice.AudioInput(_wav())
        )
        events = await _events(result)
    [err] = [e.error for e in events if isinstance(e, voice.VoiceStreamEventError)]
    assert isinstance(err, OpenAISTTStatusError) and isinstance(err, voice.STTError)
    assert err.status == 401 and err.code == "invalid_api_key"
    assert "401" in str(err) and "API key" in str(err) and wrong not in str(err)
    assert server.count("/audio/transcriptions") == 1
    assert _lifecycle(events) == ["session_ended"]


async def test_tts_stream_cut_midway_reports_error_and_ends_session(server, provider):
    server.tts_chunk_bytes = 2000
    server.cut_speech_after = 5000
    result = await voice.Pipeline(
        voice.SimpleWorkflow(lambda t: "A long enough reply to cut."), provider=provider
    ).run(voice.AudioInput(_wav()))
    events = await _events(result)
    errors = [e.error for e in events if isinstance(e, voice.VoiceStreamEventError)]
    assert len(errors) == 1 and isinstance(errors[0], voice.TTSError)
    assert _lifecycle(events) == ["turn_started", "turn_ended", "session_ended"]
    audio = _audio(events)
    full = server.speech_audio("A long enough reply to cut.")
    assert 0 < len(audio) <= 5000 and full.startswith(audio)


async def test_tts_4xx_is_not_retried(server, provider):
    server.fail("/audio/speech", 400, times=1, message="bad voice")
    result = await voice.Pipeline(voice.SimpleWorkflow(lambda t: "Hi."), provider=provider).run(
        voice.AudioInput(_wav())
    )
    await _events(result)
    [err] = result.errors
    assert isinstance(err, OpenAITTSStatusError) and err.status == 400 and "bad voice" in str(err)
    assert server.count("/audio/speech") == 1


async def test_tts_429_then_success_and_settings(server, provider):
    server.fail("/audio/speech", 429, times=1)
    settings = voice.TTSSettings(voice="onyx", speed=1.25, instructions="calm", dtype="float32")
    result = await voice.Pipeline(
        voice.SimpleWorkflow(lambda t: "Okay."), voice.Config(tts_settings=settings), provider=provider
    ).run(voice.AudioInput(_wav()))
    out = await result.collect_audio()
    ref = np.frombuffer(server.speech_audio("Okay."), dtype="<i2").astype(np.float32) / 32768
    np.testing.assert_array_equal(out, ref)
    bodies = [r.body for r in server.requests if r.path == "/audio/speech"]
    assert len(bodies) == 2 and bodies[1]["speed"] == 1.25 and bodies[1]["instructions"] == "calm"
    assert bodies[1]["voice"] == "onyx"


@functools.cache
def _response_adapter():
    from openai.types.responses import ResponseCreateParams

    # Kept alive: the lazily validated `Iterable` fields need their adapter while iterated.
    return pydantic.TypeAdapter(ResponseCreateParams)


def _response_params(body):
    parsed = _response_adapter().validate_python(body)
    parsed["input"] = list(parsed["input"])
    if "tools" in parsed:
        parsed["tools"] = list(parsed["tools"])
    return parsed


async def test_agent_workflow_tool_round_trip_through_the_pipeline(server, provider):
    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: The city name.
        """
        calls.append(city)
        return f"sunny and 21 degrees in {city}"

    server.stt_texts = ["What is the weather in Paris?"]
    server.responses = [
        FakeResponse(text="Let me check.", tool_calls=[("get_weather", {"city": "Paris"})]),
        FakeResponse(text="It is sunny in Paris. Enjoy!"),
    ]
    agent = voice.AgentWorkflow(
        agent={"instructions": "Be brief.", "tools": [get_weather]},
        api_key=KEY,
        base_url=server.base_url,
    )
    async with agent:
        result = await voice.Pipeline(agent, provider=provider).run(voice.AudioInput(_wav()))
        events = await _events(result)
    assert result.errors == [] and calls == ["Paris"]
    assert result.turns[0].sentences == ["Let me check.", "It is sunny in Paris.", "Enjoy!"]
    expected = b"".join(server.speech_audio(s) for s in result.turns[0].sentences)
    assert _audio(events) == expected
    first, second = [_response_params(r.body) for r in server.requests if r.path == "/responses"]
    assert first["instructions"] == "Be brief." and first["stream"] is True
    assert first["tools"][0]["name"] == "get_weather" and first["tools"][0]["strict"] is True
    assert first["tools"][0]["parameters"]["required"] == ["city"]
    assert first["input"] == [{"role": "user", "content": "What is the weather in Paris?"}]
    items = second["input"]
    assert items[1] == {"role": "assistant", "content": "Let me check."}
    assert items[2]["type"] == "function_call" and json.loads(items[2]["arguments"]) == {"city": "Paris"}
    assert items[3] == {
        "type": "function_call_output",
        "call_id": items[2]["call_id"],
        "output": "sunny and 21 degrees in Paris",
    }


async def test_agent_workflow_keeps_multi_turn_history_and_streams(server):
    async with voice.AgentWorkflow(
        agent={"instructions": "x"}, model="gpt-test", base_url=server.base_url, api_key=KEY
    ) as agent:
        first = [p async for p in agent.run("one")]
        second = [p async for p in agent.run("two")]
    assert "".join(first) == "You said: one." and len(first) == 3  # one delta per word
    assert "".join(second) == "You said: two."
    last = _response_params(server.requests[-1].body)
    assert last["model"] == "gpt-test"
    assert last["input"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "You said: one."},
        {"role": "user", "content": "two"},
    ]


async def test_agent_workflow_error_status_and_unknown_tool(server):
    server.fail("/responses", 400, message="model not found")
    async with voice.AgentWorkflow(agent={}, base_url=server.base_url, api_key=KEY) as agent:
        with pytest.raises(voice.AgentWorkflowError, match="model not found"):
            [p async for p in agent.run("hi")]
        server.responses = [FakeResponse(tool_calls=[("nope", "{}")]), FakeResponse(text="Sorry.")]
        assert [p async for p in agent.run("hi")] == ["Sorry."]
    output = server.requests[-1].body["input"][-1]
    assert output["type"] == "function_call_output" and "no tool named 'nope'" in output["output"]


async def test_fake_server_sse_matches_openai_stream_event_types(server):
    from openai.types.responses import ResponseStreamEvent

    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    server.responses = [FakeResponse(text="Hi there.", tool_calls=[("f", {"a": 1})])]
    async with voice.AgentWorkflow(agent={}, base_url=server.base_url, api_key=KEY) as agent:
        session = agent._client.session()
        async with session.post(
            server.base_url + "/responses", json={"model": "m", "input": "x", "stream": True}
        ) as r:
            events = [e async for e in sse_events(r)]
    for event in events:
        adapter.validate_python(event)
    assert [e["type"] for e in events][-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_streamed_two_turns_over_the_realtime_transcription_session(server, provider):
    path = data_path("two_turns_16k.wav")
    from openai.types.realtime import RealtimeClientEvent

    server.stt_texts = ["Hello there.", "Please tell me a joke about computers."]
    replies = []
    wf = voice.SimpleWorkflow(lambda text: replies.append(text) or [f"Got {len(replies)}."])
    inp = voice.StreamedAudioInput(sample_rate=16000)
    partials = []
    telemetry.attach(
        "voice-openai-partials",
        ("fastvoice", "voice", "stt", "partial"),
        lambda e, m, md, cfg=None: partials.append(md["transcript"]),
    )
    try:
        result = await voice.Pipeline(wf, provider=provider).run_streamed(inp)
        with wave.open(str(path)) as w:
            pcm = w.readframes(w.getnframes())
        for i in range(0, len(pcm), 640):
            await inp.push(pcm[i : i + 640])
        await inp.close()
        events = await _events(result)
    finally:
        telemetry.detach("voice-openai-partials")
    assert partials[:2] == ["Hello", "Hello there."]  # growing partial transcripts, one per delta
    assert partials[-1] == server.stt_texts[1]
    assert result.errors == []
    assert replies == server.stt_texts
    assert _lifecycle(events) == ["turn_started", "turn_ended"] * 2 + ["session_ended"]
    assert _audio(events) == server.speech_audio("Got 1.") + server.speech_audio("Got 2.")
    frames = [r.body for r in server.requests if r.path == "/realtime"]
    adapter = pydantic.TypeAdapter(RealtimeClientEvent)
    for frame in frames:
        adapter.validate_python(frame)
    assert frames[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    appended = sum(len(__import__("base64").b64decode(f["audio"])) for f in frames if "audio" in f)
    expected = len(pcm) * 24000 // 16000  # resampled to 24 kHz, plus the resampler's short tail
    assert expected <= appended <= expected + 2 * 24000 * 0.02
    assert [f["type"] for f in frames[-2:]] == ["input_audio_buffer.commit", "input_audio_buffer.clear"]


async def test_telemetry_events_for_an_openai_turn(server, provider):
    seen = []
    names = [
        ("fastvoice", "voice", kind, phase)
        for kind, phases in {
            "pipeline": ("start", "stop"),
            "stt": ("start", "complete"),
            "tts": ("start", "chunk", "complete"),
        }.items()
        for phase in phases
    ]
    telemetry.attach_many(
        "voice-openai-test", names, lambda e, m, md, cfg=None: seen.append((tuple(e), m, md))
    )
    try:
        result = await voice.Pipeline(voice.SimpleWorkflow(lambda t: "Fine."), provider=provider).run(
            voice.AudioInput(_wav())
        )
        await result.collect_audio()
    finally:
        telemetry.detach("voice-openai-test")
    kinds = [e[0][2:] for e in seen]
    for name in names:
        assert name[2:] in kinds
    [stt] = [m for e, m, md in seen if e[2:] == ("stt", "complete")]
    assert stt["audio_duration"] == pytest.approx(0.5)
    chunks = sum(m["bytes"] for e, m, md in seen if e[2:] == ("tts", "chunk"))
    assert chunks == len(server.speech_audio("Fine."))


def test_provider_resolution_and_base_url(monkeypatch, tmp_path):
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    monkeypatch.delenv("CODEX_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    p = resolve_provider("openai")
    assert isinstance(p, OpenAIVoiceModelProvider) and p.base_url == "http://127.0.0.1:9/v1"
    assert isinstance(resolve_provider(None), OpenAIVoiceModelProvider)
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIVoiceModelProvider().base_url == "https://api.openai.com/v1"


async def test_streamed_session_goes_on_after_a_failed_turn(server, provider):
    path = data_path("two_turns_16k.wav")
    server.stt_texts = ["lost", "second turn"]
    server.fail_realtime_turns = {0}
    inp = voice.StreamedAudioInput(sample_rate=16000)
    result = await voice.Pipeline(
        voice.SimpleWorkflow(lambda t: f"Heard {t}."), provider=provider
    ).run_streamed(inp)
    with wave.open(str(path)) as w:
        await inp.push(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    await inp.close()
    events = await _events(result)
    errors = [e.error for e in events if isinstance(e, voice.VoiceStreamEventError)]
    assert len(errors) == 1 and isinstance(errors[0], voice.STTError) and "scripted failure" in str(errors[0])
    assert [t.transcript for t in result.turns] == ["second turn"]
    assert _audio(events) == server.speech_audio("Heard second turn.")
    assert _lifecycle(events)[-1] == "session_ended"


async def test_connection_refused_is_retried_then_a_clear_error():
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OpenAIVoiceModelProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", retry=FAST) as p:
        result = await voice.Pipeline(voice.SimpleWorkflow(str), provider=p).run(voice.AudioInput(_wav()))
        events = await _events(result)
    [err] = result.errors
    assert isinstance(err, OpenAISTTStatusError) and err.status == 0 and "Connect" in str(err)
    assert _lifecycle(events) == ["session_ended"]


def test_voice_imports_without_aiohttp_and_explains_what_is_missing():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "from fastvoice import voice\n"
        "try:\n"
        "    voice.AgentWorkflow(agent={}, api_key='sk-0123456789abcdef')\n"
        "except voice.ProviderUnavailableError as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "unavailable:" in proc.stdout and "fastvoice[openai]" in proc.stdout


async def test_pipeline_closes_only_the_provider_it_created(server, provider, monkeypatch):
    echo = voice.SimpleWorkflow(lambda text: [f"You said: {text}."])
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    async with voice.Pipeline(echo, provider="openai") as owned:
        assert _audio(await _events(await owned.run(voice.AudioInput(_wav()))))
        http = owned.provider._client  # the HTTP session the pipeline's own provider opened
        assert http._session is not None and not http._session.closed
    assert http._session is None  # closed by the pipeline on exit

    async with voice.Pipeline(echo, provider=provider) as borrowed:
        assert _audio(await _events(await borrowed.run(voice.AudioInput(_wav()))))
    theirs = provider._client._session  # a provider passed in stays open: it is the caller's
    assert theirs is not None and not theirs.closed
