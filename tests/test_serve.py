"""fastvoice serve: the offline Realtime server, driven over real WebSockets on 127.0.0.1.

Every event the server sends is re-validated here as a GA ``RealtimeServerEvent`` (strict: unknown fields
rejected); audio is checked against independent references (stdlib ``wave``/``base64``, numpy energy) and
transcripts against the real recording's words.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from _data import data_path
from fastvoice import audio
from fastvoice.serve import Brain, BrainReply, FunctionCall, RealtimeServer, TurnContext, cli_main
from fastvoice.serve.brain import brain_factory, load_brain
from fastvoice.testing import validate_server_event

CHUNK = 960  # 20 ms of PCM16 at 24 kHz


def voice_sample() -> bytes:
    with wave.open(str(data_path("voice_sample_24k.wav"))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return w.readframes(w.getnframes())


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


class Client:
    """A raw GA client: sends dicts, receives and strictly validates every server event."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event: dict[str, Any] = json.loads(msg.data)
        validate_server_event(event)
        self.seen.append(event)
        return event

    async def until(self, kind: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Events up to and including the next one of type ``kind``."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            event = await self.recv(max(0.1, deadline - time.monotonic()))
            out.append(event)
            if event["type"] == kind:
                return out

    async def update(self, **session: Any) -> dict[str, Any]:
        await self.send({"type": "session.update", "session": {"type": "realtime", **session}})
        return (await self.until("session.updated"))[-1]

    async def say_text(self, text: str) -> None:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": "conversation.item.create", "item": item})
        await self.until("conversation.item.done")

    async def stream(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), CHUNK):
            await self.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + CHUNK]).decode()}
            )


async def connect(server: RealtimeServer, http: aiohttp.ClientSession) -> Client:
    client = Client(await http.ws_connect(server.url))
    created = await client.recv()
    assert created["type"] == "session.created"
    return client


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )


VAD = {"type": "server_vad", "silence_duration_ms": 500, "create_response": True, "interrupt_response": True}
TRANSCRIBE = {"transcription": {"model": "whisper-1"}, "turn_detection": VAD}


@pytest.mark.parametrize("stream_decoders", [2, 0], ids=["streamed-stt", "batch-stt"])
async def test_spoken_turn_gets_transcript_and_audio_reply(stream_decoders: int) -> None:
    speech = voice_sample()
    silence = bytes(CHUNK * 35)
    server = RealtimeServer(pace=8.0, stream_decoders=stream_decoders)
    async with server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        await client.update(audio={"input": TRANSCRIBE})
        await client.stream(bytes(CHUNK * 10) + speech + silence)
        events = await client.until("response.done", timeout=30)
        kinds = [e["type"] for e in events]
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "response.created",
            "conversation.item.input_audio_transcription.completed",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
        firsts = [kinds.index(k) for k in order]  # every step present, first occurrences in protocol order
        assert firsts == sorted(firsts), kinds
        started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
        stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
        assert 0 <= started["audio_start_ms"] < 200 + 100 < stopped["audio_end_ms"] <= 200 + 2100 + 700
        heard = next(
            e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
        )
        assert "wonderful day" in heard["transcript"]
        said = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
        assert "wonderful day" in said
        reply = audio_of(events)
        assert len(reply) % 2 == 0 and len(reply) / 48000 > 0.8  # PCM16 24 kHz, about a second of speech
        assert rms(reply) > 500
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["usage"]["output_token_details"]["audio_tokens"] > 10
        assert done["output"][0]["content"][0]["transcript"] == said
        # The user item holds the transcript too (what a brain or a retrieve sees).
        await client.send({"type": "conversation.item.retrieve", "item_id": heard["item_id"]})
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert "wonderful day" in item["content"][0]["transcript"]
    assert server.errors == []


@pytest.mark.parametrize(
    "kind, decode", [("audio/pcmu", audio.ulaw_decode), ("audio/pcma", audio.alaw_decode)]
)
async def test_g711_output_is_resampled_to_8k(kind: str, decode: Any) -> None:
    async with RealtimeServer(pace=0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        await client.update(audio={"input": {"turn_detection": None}, "output": {"format": {"type": kind}}})
        await client.say_text("Good morning to you.")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        wire = audio_of(events)
        pcm = decode(wire)
        assert len(pcm) == 2 * len(wire)  # one byte per sample on the wire
        spoken_s = len(wire) / 8000
        assert 0.5 < spoken_s < 5
        # Energy mostly below 4 kHz survived and is not silence; the spectrum has no content at the 24k rate.
        assert rms(pcm) > 500
        # Same words as PCM16 at 24 kHz: durations agree within 50 ms (eSpeak jitters a little).
        await client.update(audio={"output": {"format": {"type": "audio/pcm", "rate": 24000}}})
        await client.send({"type": "response.create"})
        ref = audio_of(await client.until("response.done"))
        assert abs(len(ref) / 48000 - spoken_s) < 0.05 + 0.25 * spoken_s


async def test_barge_in_cancels_and_truncate_trims_audio_and_transcript() -> None:
    speech = voice_sample()
    long_text = "This is a long answer. It has several sentences. " * 4
    brain = brain_factory(lambda text: long_text)
    async with RealtimeServer(workflow=brain(), pace=1.0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        await client.update(audio={"input": TRANSCRIBE})
        await client.say_text("Tell me a story")
        await client.send({"type": "response.create"})
        first = await client.until("response.output_audio.delta")
        item_id = first[-1]["item_id"]
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await client.stream(speech[: 24000 * 2])  # the user talks over the reply
        events = await client.until("response.done")
        assert time.monotonic() - t0 < 3.0
        assert any(e["type"] == "input_audio_buffer.speech_started" for e in events)
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        assert done["output"][0]["status"] == "incomplete"
        sent = audio_of(first + events)
        sent_ms = len(sent) / 48
        assert 250 <= sent_ms < 3000  # paced at real time: far less than the whole answer was sent
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 200,
            }
        )
        truncated = (await client.until("conversation.item.truncated"))[-1]
        assert truncated["audio_end_ms"] == 200
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
        part = item["content"][0]
        assert base64.b64decode(part["audio"]) == sent[: 200 * 48]
        assert part["transcript"] is not None and len(part["transcript"]) < len(long_text.strip())
        assert long_text.startswith(part["transcript"])
        # Past the audio that exists: the real error.
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 5000,
            }
        )
        err = (await client.until("error"))[-1]["error"]
        assert err["code"] == "invalid_value" and err["param"] == "audio_end_ms"


class WeatherBrain:
    """Calls get_weather for a user question; speaks the tool's output when it comes back."""

    async def respond(self, turn: TurnContext) -> BrainReply:
        output = turn.pending_tool_output()
        if output is not None:
            return BrainReply(text=f"The weather: {output}")
        if "get_weather" in turn.tool_names and "weather" in turn.last_user_text():
            return BrainReply(calls=[FunctionCall("get_weather", {"city": "Paris"})])
        return BrainReply(text=f"[{turn.instructions}] {turn.last_user_text()}")


async def test_tool_calling_round_trip_and_handoff_via_session_update() -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    assert isinstance(WeatherBrain(), Brain)
    async with RealtimeServer(workflow=WeatherBrain, pace=0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        await client.update(tools=[tool], instructions="You are the assistant.", output_modalities=["text"])
        await client.say_text("what is the weather in Paris?")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert args_done["name"] == "get_weather" and json.loads(args_done["arguments"]) == {"city": "Paris"}
        call = events[-1]["response"]["output"][0]
        assert call["type"] == "function_call" and call["call_id"] == args_done["call_id"]
        assert call["status"] == "completed"
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21 C"}
        await client.send({"type": "conversation.item.create", "item": output})
        await client.until("conversation.item.added")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        text = next(e for e in events if e["type"] == "response.output_text.done")["text"]
        assert text == "The weather: sunny, 21 C"
        # Handoff: the client swaps the agent's instructions; the next turn answers as the new agent.
        await client.update(instructions="You handle billing.")
        await client.say_text("hello")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == (
            "[You handle billing.] hello"
        )


async def test_bad_client_events_get_real_errors_and_the_session_continues() -> None:
    async with RealtimeServer(pace=0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)

        async def expect(raw: str | dict[str, Any], code: str, param: str | None) -> dict[str, Any]:
            await client.ws.send_str(raw if isinstance(raw, str) else json.dumps(raw))
            event = await client.recv()
            assert event["type"] == "error", event
            assert (event["error"]["code"], event["error"].get("param")) == (code, param), event
            return dict(event["error"])

        await expect("{not json", "invalid_json", None)
        err = await expect({"type": "response.teleport", "event_id": "evt_9"}, "invalid_value", "type")
        assert err["event_id"] == "evt_9" and "'response.teleport'" in err["message"]
        await expect({"type": "conversation.item.create"}, "missing_required_parameter", "item")
        await expect(
            {"type": "session.update", "session": {"type": "realtime", "voise": "x"}},
            "unknown_parameter",
            "session.voise",
        )
        await expect({"type": "input_audio_buffer.append", "audio": "%%%"}, "invalid_value", "audio")
        await expect(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()},
            "invalid_value",
            "audio",
        )
        await expect({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None)
        await expect({"type": "response.cancel"}, "response_cancel_not_active", None)
        await expect({"type": "conversation.item.delete", "item_id": "nope"}, "item_not_found", "item_id")
        # (type "transcription" is taken: see test_serve_transcription)
        await expect(
            {"type": "session.update", "session": {"type": "translation"}}, "invalid_value", "session.type"
        )
        # Still alive and answering.
        await client.update(output_modalities=["text"], audio={"input": {"turn_detection": None}})
        await client.say_text("still there")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert (
            next(e for e in events if e["type"] == "response.output_text.done")["text"]
            == "You said: still there."
        )
        # A second response.create while one is active is refused, the first one still completes.
        await client.send({"type": "response.create"})
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        errors = [e for e in events if e["type"] == "error"]
        assert [e["error"]["code"] for e in errors] == ["conversation_already_has_active_response"]
        assert events[-1]["response"]["status"] == "completed"
        # Manual commit of real audio without VAD works.
        await client.stream(voice_sample())
        await client.send({"type": "input_audio_buffer.commit"})
        committed = (await client.until("input_audio_buffer.committed"))[-1]
        assert committed["item_id"].startswith("item_")
    assert server.errors == []


SPOKEN = 6  # more simultaneous speakers than streaming decoders: some turns fall back to batch STT


async def test_twenty_concurrent_sessions_are_isolated() -> None:
    speech = bytes(CHUNK * 10) + voice_sample() + bytes(CHUNK * 35)
    async with RealtimeServer(pace=0, stream_decoders=2) as server, aiohttp.ClientSession() as http:

        async def one(n: int) -> tuple[str, int, list[str]]:
            client = await connect(server, http)
            if n < SPOKEN:
                await client.stream(speech)  # server VAD (the default session) answers by itself
            else:
                await client.update(audio={"input": {"turn_detection": None}})
                await client.say_text(f"number {n}")
                await client.send({"type": "response.create"})
            events = await client.until("response.done", timeout=40)
            done = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
            items = [e["item"]["id"] for e in client.seen if e["type"] == "conversation.item.added"]
            await client.ws.close()
            return done["transcript"], len(audio_of(events)), items

        results = await asyncio.gather(*(one(n) for n in range(20)))
        assert all("wonderful day" in r[0] for r in results[:SPOKEN]), [r[0] for r in results[:SPOKEN]]
        assert [r[0] for r in results[SPOKEN:]] == [f"You said: number {n}." for n in range(SPOKEN, 20)]
        assert all(r[1] > 24000 for r in results)
        all_items = [i for r in results for i in r[2]]
        assert len(set(all_items)) == len(all_items) == 40  # one user + one assistant item each, never shared
    assert server.errors == []


async def test_openai_agents_realtime_session_completes_a_spoken_turn() -> None:
    agents_realtime = pytest.importorskip("agents.realtime", reason="openai-agents is not installed")
    speech = voice_sample()
    agent = agents_realtime.RealtimeAgent(name="Assistant", instructions="You are helpful.")
    settings = {
        "model_name": "gpt-realtime",
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        "input_audio_transcription": {"model": "whisper-1"},
    }
    runner = agents_realtime.RealtimeRunner(agent, config={"model_settings": settings})
    async with RealtimeServer(pace=8.0) as server:
        session = await runner.run(model_config={"url": server.url, "api_key": "offline"})
        async with session:
            for i in range(0, len(speech) + CHUNK * 40, CHUNK):
                await session.send_audio((bytes(CHUNK * 10) + speech + bytes(CHUNK * 40))[i : i + CHUNK])
            heard: list[bytes] = []
            transcripts: list[str] = []

            async def consume() -> None:
                async for event in session:
                    if event.type == "audio":
                        heard.append(event.audio.data)
                    elif event.type == "history_updated":
                        for item in event.history:
                            for part in getattr(item, "content", []) or []:
                                if getattr(part, "transcript", None):
                                    transcripts.append(part.transcript)
                    elif event.type == "error":
                        raise AssertionError(event.error)
                    elif event.type == "agent_end":
                        return

            await asyncio.wait_for(consume(), 30)
        reply = b"".join(heard)
        assert len(reply) / 48000 > 0.8 and rms(reply) > 500
        assert any("wonderful day" in t for t in transcripts)
    assert server.errors == []


def test_load_brain_and_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_brains.py").write_text(
        "from fastvoice.voice import SimpleWorkflow\n"
        "flow = SimpleWorkflow(lambda t: 'ok ' + t)\n"
        "not_a_brain = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    flow = load_brain("my_brains:flow")
    assert flow.run("x") == "ok x"
    for bad in ("my_brains", "my_brains:missing", "no_such_module_xyz:flow", "my_brains:not_a_brain"):
        with pytest.raises((ValueError, TypeError)):
            load_brain(bad)
    assert cli_main(["--workflow", "my_brains:missing"]) == 2


def test_python_dash_m_serve_listens() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastvoice.serve", "--port", "0", "--no-warm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on ws://127.0.0.1:" in line, line
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


async def test_g711_input_is_decoded_for_vad_and_stt() -> None:
    from scipy.signal import resample_poly

    x = np.frombuffer(voice_sample(), dtype="<i2").astype(np.float64)
    pcm8k = np.clip(np.round(resample_poly(x, 1, 3)), -32768, 32767).astype("<i2").tobytes()
    wire = audio.ulaw_encode(bytes(320 * 10) + pcm8k + bytes(320 * 35))  # 8 kHz: 320 bytes of PCM16 = 20 ms
    async with RealtimeServer(pace=0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        fmt = {"type": "audio/pcmu"}
        await client.update(audio={"input": {**TRANSCRIBE, "format": fmt}, "output": {"format": fmt}})
        for i in range(0, len(wire), 160):  # 20 ms of G.711 per append
            await client.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(wire[i : i + 160]).decode()}
            )
        events = await client.until("response.done", timeout=30)
        stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
        assert 2000 <= stopped["audio_end_ms"] <= 3000  # ms of the 8 kHz stream, not of bytes
        heard = next(
            e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
        )
        assert "wonderful" in heard["transcript"]
        assert heard["usage"]["seconds"] == pytest.approx(len(pcm8k) / 16000, abs=0.6)
        reply = audio.ulaw_decode(audio_of(events))
        assert len(reply) / 16000 > 0.8 and rms(reply) > 500


async def test_conversation_items_order_and_a_failing_brain_fails_only_its_response() -> None:
    def brain(text: str) -> str:
        if text == "boom":
            raise RuntimeError("brain bug")
        return f"ok {text}"

    async with RealtimeServer(workflow=brain, pace=0) as server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        await client.update(output_modalities=["text"])

        async def create(item_id: str, text: str, after: str | None = None) -> dict[str, Any]:
            item = {
                "id": item_id,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
            event: dict[str, Any] = {"type": "conversation.item.create", "item": item}
            if after is not None:
                event["previous_item_id"] = after
            await client.send(event)
            return (await client.until("conversation.item.added"))[-1]

        assert (await create("item_b", "second"))["previous_item_id"] is None
        assert (await create("item_a", "first", "root"))["previous_item_id"] is None
        assert (await create("item_c", "third", "item_b"))["previous_item_id"] == "item_b"
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {"id": "item_a", "type": "message", "role": "user", "content": []},
            }
        )
        assert (await client.until("error"))[-1]["error"]["code"] == "duplicate_item_id"
        await client.send({"type": "conversation.item.delete", "item_id": "item_c"})
        assert (await client.until("conversation.item.deleted"))[-1]["item_id"] == "item_c"
        # The brain answers the newest user message by position: item_b now.
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == "ok second"
        await create("item_d", "boom")
        await client.send({"type": "response.create"})
        done = (await client.until("response.done"))[-1]["response"]
        assert done["status"] == "failed"
        await create("item_e", "again")
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == "ok again"
    assert [str(e) for e in server.errors] == ["brain bug"]
