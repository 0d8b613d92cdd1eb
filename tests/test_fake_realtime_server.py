"""FakeRealtimeServer, driven by a plain `websockets` client (independent of fastvoice's own transport)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import numpy as np
import pydantic
import pytest
import websockets
from fastvoice.realtime import _protocol as P
from fastvoice.testing import EventValidationError, FakeRealtimeServer, ScriptedResponse, ScriptedToolCall
from openai.types.realtime import RealtimeServerEvent
from websockets.asyncio.client import ClientConnection, connect

SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)


def pcm(ms: int, freq: float = 440.0, rate: int = 24000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2").tobytes()


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """Next server event; every one must validate as a GA RealtimeServerEvent."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    event = json.loads(raw)
    SERVER_EVENT.validate_python(event)
    assert isinstance(event["event_id"], str) and event["event_id"]
    return event


async def recv_until(ws: ClientConnection, event_type: str) -> list[dict[str, Any]]:
    events = []
    while True:
        event = await recv(ws)
        events.append(event)
        if event["type"] == event_type:
            return events


async def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    await ws.send(json.dumps(event))


async def test_connect_session_update_and_recording() -> None:
    async with FakeRealtimeServer() as server, connect(server.url + "?model=gpt-realtime-mini") as ws:
        created = await recv(ws)
        assert created["type"] == "session.created"
        assert created["session"]["model"] == "gpt-realtime-mini"
        assert server.connections[0].query == {"model": "gpt-realtime-mini"}
        update = P.session_update(
            {"type": "realtime", "instructions": "Be brief.", "audio": {"output": {"voice": "marin"}}}
        )
        await send(ws, update)
        updated = await recv(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["instructions"] == "Be brief."
        assert updated["session"]["audio"]["output"]["voice"] == "marin"
        assert updated["session"]["audio"]["output"]["format"] == {
            "type": "audio/pcm",
            "rate": 24000,
        }  # merged
        assert server.session == updated["session"]
        assert await server.wait_for("session.update") == update
        frame = server.received[0]
        assert frame.valid and json.loads(frame.raw) == update and frame.data == update
        await send(ws, P.session_update({"type": "realtime", "model": "gpt-realtime"}))
        err = await recv(ws)
        assert err["type"] == "error" and "model" in err["error"]["message"]


async def test_invalid_frames_are_recorded_and_answered_with_errors() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        await ws.send("{not json")
        assert (await recv(ws))["error"]["code"] == "invalid_json"
        await send(ws, {"type": "input_audio_buffer.push", "event_id": "c1"})
        err = await recv(ws)
        assert err["error"]["code"] == "invalid_event" and err["error"]["event_id"] == "c1"
        await send(
            ws, {"type": "session.update", "session": {"modalities": ["text"], "voice": "ash"}}
        )  # beta shape
        assert (await recv(ws))["error"]["code"] == "invalid_event"
        await send(ws, {"type": "input_audio_buffer.append", "audio": "AAAA", "volume": 3})  # unknown field
        assert "volume" in (await recv(ws))["error"]["message"]
        await ws.send(b"\x00\x01")
        assert (await recv(ws))["error"]["code"] == "invalid_event"
        # The connection survived all of that.
        await send(ws, P.input_audio_buffer_clear())
        assert (await recv(ws))["type"] == "input_audio_buffer.cleared"
        assert len(server.invalid_frames) == 5 and server.events() == [P.input_audio_buffer_clear()]
        assert server.invalid_frames[1].data == {"type": "input_audio_buffer.push", "event_id": "c1"}


async def test_commit_answers_with_scripted_audio_response() -> None:
    chunks = [pcm(20, f) for f in (300, 400, 500, 600)]
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        server.on_commit(
            ScriptedResponse(audio=chunks, transcript=["Hello", " world"]), transcript="hi there"
        )
        user_audio = pcm(120)
        for i in range(0, len(user_audio), 960):
            await send(ws, P.input_audio_buffer_append(user_audio[i : i + 960]))
        await send(ws, P.input_audio_buffer_commit())
        events = await recv_until(ws, "response.done")
        assert server.input_audio == user_audio
        types = [e["type"] for e in events]
        assert types == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        audio = b"".join(
            base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
        )
        assert audio == b"".join(chunks)
        by_type = {e["type"]: e for e in events}
        assert by_type["response.output_audio_transcript.done"]["transcript"] == "Hello world"
        assert by_type["conversation.item.input_audio_transcription.completed"]["transcript"] == "hi there"
        assert by_type["conversation.item.input_audio_transcription.completed"]["usage"]["seconds"] == 0.12
        rid = by_type["response.created"]["response"]["id"]
        assert all(
            e["response_id"] == rid for e in events if "delta" in e and e["type"].startswith("response.")
        )
        done = by_type["response.done"]["response"]
        assert (
            done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == "Hello world"
        )
        assert len(server.sent) == len(events) + 1  # + session.created


async def test_commit_needs_100ms() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        await send(ws, P.input_audio_buffer_append(pcm(40)))
        await send(ws, P.input_audio_buffer_commit(event_id="commit_1"))
        err = await recv(ws)
        assert (
            err["error"]["code"] == "input_audio_buffer_commit_empty" and "40.00ms" in err["error"]["message"]
        )
        assert err["error"]["event_id"] == "commit_1"
        await send(ws, P.input_audio_buffer_append("!!notbase64!!"))
        assert (await recv(ws))["error"]["message"] == "audio is not valid base64"


async def test_response_create_while_active_cancel_and_truncate() -> None:
    chunk = pcm(20)
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        server.on_response_create(
            [ScriptedResponse(audio=[chunk] * 50, delta_interval_s=0.01), ScriptedResponse(text="ok")]
        )
        await send(ws, P.response_create())
        events = []
        while sum(e["type"] == "response.output_audio.delta" for e in events) < 10:
            events.append(await recv(ws))
        item_id = next(e["item"]["id"] for e in events if e["type"] == "response.output_item.added")
        await send(ws, P.response_create(event_id="rc2"))  # coalescing bug in a client → server error
        await send(ws, P.conversation_item_truncate(item_id, 0, 150))
        await send(ws, P.response_cancel())
        rest = await recv_until(ws, "response.done")
        errors = [e for e in rest if e["type"] == "error"]
        assert errors[0]["error"]["code"] == "conversation_already_has_active_response"
        assert errors[0]["error"]["event_id"] == "rc2"
        truncated = next(e for e in rest if e["type"] == "conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 150)
        done = rest[-1]["response"]
        assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
        delivered = sum(e["type"] == "response.output_audio.delta" for e in events + rest)
        assert delivered < 50  # playback really stopped
        # Truncating past what was sent is rejected, like the real API.
        await send(ws, P.conversation_item_truncate(item_id, 0, 60_000))
        assert "shorter than" in (await recv(ws))["error"]["message"]
        await send(ws, P.conversation_item_truncate("item_missing", 0, 10))
        assert (await recv(ws))["error"]["code"] == "item_not_found"
        await send(ws, P.response_cancel())
        assert (await recv(ws))["error"]["code"] == "response_cancel_not_active"
        # The queued second script answers the next response.create.
        await send(ws, P.response_create())
        text_events = await recv_until(ws, "response.done")
        assert [e["delta"] for e in text_events if e["type"] == "response.output_text.delta"] == ["ok"]
        assert server.truncations == [P.conversation_item_truncate(item_id, 0, 150)]


async def test_tool_call_round_trip_and_wait_for() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        call_id = await server.call_tool("get_weather", {"city": "SF"})
        events = await recv_until(ws, "response.done")
        args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert (args_done["name"], args_done["call_id"], json.loads(args_done["arguments"])) == (
            "get_weather",
            call_id,
            {"city": "SF"},
        )
        item = events[-1]["response"]["output"][0]
        assert item["type"] == "function_call" and item["status"] == "completed"
        waiter = asyncio.create_task(server.wait_for("conversation.item.create"))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await send(ws, P.function_call_output(call_id, "Sunny in SF"))
        got = await waiter
        assert got["item"] == {"type": "function_call_output", "call_id": call_id, "output": "Sunny in SF"}
        added = await recv(ws)
        assert added["type"] == "conversation.item.added" and added["item"]["output"] == "Sunny in SF"
        assert added["previous_item_id"] == item["id"]
        await recv(ws)  # conversation.item.done
        # retrieve / delete the output item
        await send(ws, P.conversation_item_retrieve(added["item"]["id"]))
        assert (await recv(ws))["item"]["call_id"] == call_id
        await send(ws, P.conversation_item_delete(added["item"]["id"]))
        assert (await recv(ws))["type"] == "conversation.item.deleted"
        await send(ws, P.conversation_item_retrieve(added["item"]["id"]))
        assert (await recv(ws))["error"]["code"] == "item_not_found"
        with pytest.raises(TimeoutError, match=r"conversation.item.create.*#2"):
            await server.wait_for("conversation.item.create", timeout=0.05)


async def test_scripted_tool_calls_after_speech_and_text() -> None:
    script = ScriptedResponse(
        transcript="Let me check.", audio=[pcm(20)], tool_calls=[ScriptedToolCall("lookup", "{}", "c9")]
    )
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        server.on_response_create(lambda event: script if event.get("event_id") == "go" else None)
        await send(ws, P.response_create(event_id="go"))
        events = await recv_until(ws, "response.done")
        assert [o["type"] for o in events[-1]["response"]["output"]] == ["message", "function_call"]
        assert events[-1]["response"]["output"][1]["call_id"] == "c9"
        await send(ws, P.response_create())  # callable returned None → empty response
        empty = await recv_until(ws, "response.done")
        assert [e["type"] for e in empty] == ["response.created", "response.done"]


async def test_speech_started_interrupts_and_realtime_pacing() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        t0 = time.monotonic()
        rid = await server.respond(ScriptedResponse(audio=[pcm(20)] * 5, realtime=True))
        assert time.monotonic() - t0 >= 0.09  # 5 x 20 ms, first chunk also waits its own duration
        assert (await recv_until(ws, "response.done"))[-1]["response"]["id"] == rid
        server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 100, delta_interval_s=0.01))
        await send(ws, P.response_create())
        await recv_until(ws, "response.output_audio.delta")
        await server.speech_started(audio_start_ms=1200)
        events = await recv_until(ws, "response.done")
        started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 1200
        assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
        await server.wait_idle()
        server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 100, delta_interval_s=0.01))
        await send(ws, P.response_create())
        await recv_until(ws, "response.output_audio.delta")
        with pytest.raises(RuntimeError, match="still in progress"):
            await server.respond(ScriptedResponse(text="overlap"))
        await send(ws, P.response_cancel())
        assert (await recv_until(ws, "response.done"))[-1]["response"]["status"] == "cancelled"


async def test_voice_cannot_change_after_audio() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        await server.respond(ScriptedResponse(audio=[pcm(20)]))
        await recv_until(ws, "response.done")
        await send(ws, P.session_update({"type": "realtime", "audio": {"output": {"voice": "cedar"}}}))
        assert (await recv(ws))["error"]["code"] == "cannot_update_voice"
        await send(ws, P.session_update({"type": "realtime", "instructions": "same voice is fine"}))
        assert (await recv(ws))["type"] == "session.updated"


async def test_close_with_code_and_abrupt_drop_then_reconnect() -> None:
    async with FakeRealtimeServer() as server:
        async with connect(server.url) as ws:
            await recv(ws)
            await server.close(4001, "bye")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await recv(ws)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")
        async with connect(server.url) as ws:
            await recv(ws)
            await send(ws, P.input_audio_buffer_append(b"\x01\x02"))
            await server.wait_for("input_audio_buffer.append")
            await server.drop()
            with pytest.raises(websockets.ConnectionClosedError) as err:
                await recv(ws)
            assert err.value.rcvd is None  # no close frame: the TCP connection just died
        await server.wait_for_disconnect()
        async with connect(server.url) as ws:
            assert (await recv(ws))["type"] == "session.created"  # a fresh session
            await send(ws, P.input_audio_buffer_append(b"\x03\x04"))
            await server.wait_for("input_audio_buffer.append")
        assert [c.index for c in server.connections] == [0, 1, 2]
        assert server.input_audio == b"\x01\x02\x03\x04"
        assert [c.input_audio for c in server.connections] == [b"", b"\x01\x02", b"\x03\x04"]


async def test_strict_mode_refuses_to_send_invalid_events() -> None:
    async with FakeRealtimeServer() as server, connect(server.url) as ws:
        await recv(ws)
        with pytest.raises(EventValidationError, match="not a GA server event type"):
            await server.send({"type": "response.audio.delta", "delta": "AAAA"})
        with pytest.raises(EventValidationError, match="item_id"):
            await server.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0})
        await server.send_raw(
            json.dumps({"type": "response.audio.delta", "delta": "AAAA"})
        )  # explicit escape hatch
        assert json.loads(await ws.recv())["type"] == "response.audio.delta"
        sent = await server.send(
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "i"}
        )
        assert (await recv(ws)) == sent
    async with FakeRealtimeServer(strict=False) as loose, connect(loose.url) as ws:
        await recv(ws)
        await loose.send({"type": "response.audio.delta", "delta": "AAAA"})
        assert json.loads(await ws.recv())["type"] == "response.audio.delta"


async def test_api_key_is_checked_and_redacted() -> None:
    key = "sk-test-0123456789abcdef"
    async with FakeRealtimeServer(api_key=key) as server:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(server.url, additional_headers={"Authorization": "Bearer wrong"}):
                pass
        assert info.value.response.status_code == 401
        async with connect(server.url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            assert (await recv(ws))["type"] == "session.created"
        assert server.connections[0].headers["Authorization"] == "Bearer sk-…cdef"
        assert key not in repr(server.connections)


async def test_no_client_means_clear_error() -> None:
    async with FakeRealtimeServer() as server:
        with pytest.raises(RuntimeError, match="no client is connected"):
            await server.send({"type": "input_audio_buffer.cleared"})
        with pytest.raises(TimeoutError):
            await server.wait_for_connection(timeout=0.05)


async def test_beta_event_names_mode() -> None:
    async with FakeRealtimeServer(beta_event_names=True) as server, connect(server.url) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        await server.respond(ScriptedResponse(audio=[pcm(20)], transcript="hi"))
        types = []
        while not types or types[-1] != "response.done":
            event = json.loads(await ws.recv())
            types.append(event["type"])
            # Mapped back to the GA name, the event validates.
            SERVER_EVENT.validate_python({**event, "type": P.canonical_server_event_type(event["type"])})
        assert "response.audio.delta" in types and "response.audio_transcript.delta" in types
        assert "response.output_audio.delta" not in types
        assert "conversation.item.created" in types
