"""The Realtime session against FakeRealtimeServer (a real WebSocket peer on 127.0.0.1).

Every test ends by checking that every frame the client sent validated as a GA ``RealtimeClientEvent``
(the ``server`` fixture), so no behaviour here can pass on a frame the real API would refuse.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from fastvoice import realtime as rt
from fastvoice import telemetry
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse, ScriptedToolCall

KEY = "sk-test-session-0123456789"


def pcm(ms: int, freq: float = 440.0) -> bytes:
    t = np.arange(24 * ms) / 24000
    return (np.sin(2 * np.pi * freq * t) * 9000).astype("<i2").tobytes()


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as srv:
        yield srv
        assert srv.invalid_frames == [], [f.error for f in srv.invalid_frames]
        # The server never had to reject anything the client did (errors a test scripts use code "scripted").
        assert [e for e in srv.sent if e["type"] == "error" and e["error"]["code"] != "scripted"] == []


@pytest.fixture(autouse=True)
def clean_telemetry() -> Any:
    yield
    for h in telemetry.list_handlers():
        telemetry.detach(h.id)


class Collector:
    """A subscriber that records events and lets a test wait for one kind."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.times: list[float] = []  # time.monotonic() when each event was delivered
        self._cond = asyncio.Condition()

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait(self, cls: type, count: int = 1, timeout: float = 5.0, **match: Any) -> Any:
        def found() -> list[Any]:
            return [e for e in self.of(cls) if all(getattr(e, k) == v for k, v in match.items())]

        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: len(found()) >= count), timeout)
        return found()[count - 1]


ASSISTANT = rt.agent("Assistant", "You are helpful.")


async def start(server: FakeRealtimeServer, agent: rt.Agent = ASSISTANT, **kw: Any) -> rt.Session:
    return await rt.start_session(agent, kw.pop("config", None), api_key=KEY, url=server.url, **kw)


async def test_first_frame_is_full_session_update_and_stop_is_final(server: FakeRealtimeServer) -> None:
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(voice="marin"))
    session = await start(server, config=config)
    first = await server.wait_for("session.update")
    assert server.received[0].data == first
    assert first == rt.build_session_update(ASSISTANT, config)
    assert server.connections[0].query == {"model": "gpt-realtime"}
    assert server.connections[0].headers["Authorization"].startswith("Bearer sk-")
    assert KEY not in repr(session)
    await rt.stop_session(session)
    await server.wait_for_disconnect()
    assert session.closed
    with pytest.raises(rt.SessionClosedError):
        await session.send_message("hi")
    with pytest.raises(rt.SessionClosedError):
        await session.send_audio(pcm(20))
    await session.stop()  # idempotent


async def test_missing_key_fails_before_connecting(
    server: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("CODEX_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CODEX_HOME", "/nonexistent-codex-home")
    with pytest.raises(rt.MissingAPIKeyError):
        await rt.start_session(ASSISTANT, url=server.url)
    assert server.connections == []


async def test_message_roundtrip_events_and_iteration(server: FakeRealtimeServer) -> None:
    reply = [pcm(20, 300), pcm(20, 400), pcm(20, 500)]
    server.on_response_create([ScriptedResponse(audio=reply, transcript=["Hel", "lo!"])])
    async with await start(server) as session:
        await session.send_message("Hello")
        seen: list[Any] = []
        async for event in session:
            seen.append(event)
            if isinstance(event, ev.RealtimeAgentEndEvent):
                break
        user = await server.wait_for("conversation.item.create")
        assert user["item"]["content"] == [{"type": "input_text", "text": "Hello"}]
        await server.wait_for("response.create")
    audio = [e for e in seen if isinstance(e, ev.RealtimeAudioEvent)]
    assert b"".join(e.audio for e in audio) == b"".join(reply)
    assert {e.item_id for e in audio} == {"item_2"}
    transcripts = [(e.text, e.is_final) for e in seen if isinstance(e, ev.RealtimeTranscriptEvent)]
    assert transcripts == [("Hel", False), ("lo!", False), ("Hello!", True)]
    kinds = [type(e).__name__ for e in seen]
    assert kinds.index("RealtimeAgentStartEvent") < kinds.index("RealtimeAudioEvent")
    assert kinds.index("RealtimeAudioEndEvent") < kinds.index("RealtimeAgentEndEvent")
    states = [e.state for e in seen if isinstance(e, ev.RealtimeAgentStateEvent)]
    assert states[:2] == ["thinking", "speaking"]
    history = [e for e in seen if isinstance(e, ev.RealtimeHistoryUpdatedEvent)][-1].history
    assert isinstance(history[0], ev.UserMessageItem) and history[0].text == "Hello"
    assert isinstance(history[1], ev.AssistantMessageItem) and history[1].transcript == "Hello!"
    # The stream ends when the session does.
    rest = [e async for e in session]
    assert isinstance(rest[-1], ev.RealtimeConnectionEvent) and rest[-1].status == "disconnected"


async def test_subscribe_kinds_idempotent_and_unsubscribe(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(text="ok"))
    session = await start(server)
    calls: list[Any] = []
    async_calls: list[Any] = []
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def sync_handler(e: Any) -> None:
        calls.append(e)

    async def async_handler(e: Any) -> None:
        await asyncio.sleep(0)
        async_calls.append(e)

    def broken(e: Any) -> None:
        raise RuntimeError("subscriber bug")

    for h in (sync_handler, sync_handler, async_handler, async_handler, queue, queue, broken):
        session.subscribe(h)
    await session.send_message("hi")
    first_end = await asyncio.wait_for(_until(queue, ev.RealtimeAgentEndEvent), 5)
    await asyncio.sleep(0.05)
    ends = [e for e in calls if isinstance(e, ev.RealtimeAgentEndEvent)]
    assert ends == [first_end]  # subscribed twice, delivered once, and the very same object
    assert [e for e in async_calls if isinstance(e, ev.RealtimeAgentEndEvent)] == [first_end]
    assert calls == async_calls
    session.unsubscribe(sync_handler)
    session.unsubscribe(sync_handler)  # unknown now: ignored
    n = len(calls)
    await session.send_message("again")
    await asyncio.wait_for(_until(queue, ev.RealtimeAgentEndEvent), 5)
    assert len(calls) == n
    await session.stop()


async def _until(queue: asyncio.Queue[Any], cls: type) -> Any:
    while True:
        e = await queue.get()
        if isinstance(e, cls):
            return e


async def test_response_create_is_held_and_coalesced(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 10, delta_interval_s=0.01))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_message("one")
    await got.wait(ev.RealtimeAgentStartEvent)
    # Three requests while a response is active: none is sent yet, and they become one.
    await session.send_message("two")
    await session.send_message("three")
    await session.send_tool_result("call_x", {"n": 1})
    assert len(server.events("response.create")) == 1
    await got.wait(ev.RealtimeAgentEndEvent, count=2, timeout=10)
    await server.wait_idle()
    assert len(server.events("response.create")) == 2
    # Held back until after the first response.done, as the server requires.
    creates = [i for i, f in enumerate(server.received) if f.data and f.data["type"] == "response.create"]
    assert len(creates) == 2
    await session.stop()


async def test_tool_output_is_sent_at_once_while_response_active(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 20, delta_interval_s=0.01))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_message("go")
    await got.wait(ev.RealtimeAudioEvent)
    await session.send_tool_result("call_9", "done")
    out = await server.wait_for("conversation.item.create", timeout=1)  # the user message
    out = await server.wait_for("conversation.item.create", timeout=1)
    assert out["item"].pop("id").startswith("fv_item_")  # a client id: its ack is recognised
    assert out["item"] == {"type": "function_call_output", "call_id": "call_9", "output": "done"}
    assert server.session is not None
    await session.stop()


@rt.function_tool
async def get_weather(city: str) -> str:
    """Get the weather.

    Args:
        city: The city.
    """
    await asyncio.sleep(0.6)
    return f"Sunny in {city}"


@rt.function_tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


@rt.function_tool(needs_approval=True)
def delete_account(user: str) -> str:
    """Delete an account."""
    return f"deleted {user}"


async def test_function_tool_runs_in_a_task_and_session_stays_responsive(server: FakeRealtimeServer) -> None:
    attached: list[tuple[Any, ...]] = []
    telemetry.attach_many(
        "t",
        [telemetry.REALTIME_TOOL_CALL, telemetry.REALTIME_TOOL_RESULT],
        lambda n, m, md, c: attached.append((n[-1], dict(m), dict(md))),
    )
    agent = rt.agent("A", "x", tools=[get_weather])
    session = await start(server, agent)
    got = Collector()
    session.subscribe(got)
    call_id = await server.call_tool("get_weather", {"city": "Oslo"})
    start_ev = await got.wait(ev.RealtimeToolStartEvent)
    assert start_ev.call_id == call_id and json.loads(start_ev.args) == {"city": "Oslo"}
    # While the tool sleeps, the session still handles server events.
    await server.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "i_9"})
    await got.wait(ev.RealtimeAgentStateEvent, state="listening", timeout=0.5)
    assert not got.of(ev.RealtimeToolEndEvent)
    end = await got.wait(ev.RealtimeToolEndEvent)
    assert end.output == "Sunny in Oslo" and not end.is_error
    out = await server.wait_for("conversation.item.create")
    assert out["item"].pop("id").startswith("fv_item_")  # a client id: its ack is recognised
    assert out["item"] == {"type": "function_call_output", "call_id": call_id, "output": "Sunny in Oslo"}
    await server.wait_for("response.create")
    assert [a[0] for a in attached] == ["call", "result"]
    assert attached[1][1]["duration"] >= 0.6e9
    assert attached[1][2]["tool"] == "get_weather" and attached[1][2]["is_error"] is False
    await session.stop()


async def test_tool_error_and_unknown_tool(server: FakeRealtimeServer) -> None:
    session = await start(server, rt.agent("A", "x", tools=[explode]))
    got = Collector()
    session.subscribe(got)
    c1 = await server.call_tool("explode", {"reason": "test"})
    end = await got.wait(ev.RealtimeToolEndEvent)
    assert end.is_error and "boom: test" in end.output
    err = await got.wait(ev.RealtimeErrorEvent)
    assert isinstance(err.error, RuntimeError)
    out = await server.wait_for("conversation.item.create")
    assert out["item"]["call_id"] == c1 and "boom: test" in out["item"]["output"]
    await server.wait_for("response.create")
    await asyncio.sleep(0.05)  # let the server start (and finish) that response before scripting the next
    await server.wait_idle()
    c2 = await server.call_tool("no_such_tool", {})
    out = await server.wait_for("conversation.item.create")
    assert out["item"].pop("id").startswith("fv_item_")  # a client id: its ack is recognised
    assert out["item"] == {
        "type": "function_call_output",
        "call_id": c2,
        "output": "Tool no_such_tool not found",
    }
    await got.wait(ev.RealtimeErrorEvent, count=2)
    await session.stop()


async def test_client_tool_call_event_and_result(server: FakeRealtimeServer) -> None:
    tool = {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}}
    session = await start(server, rt.agent("A", "x", tools=[tool]))
    got = Collector()
    session.subscribe(got)
    call_id = await server.call_tool("lookup", {"q": 1})
    call = await got.wait(ev.RealtimeToolCallEvent)
    assert (call.name, call.call_id, call.parsed_args()) == ("lookup", call_id, {"q": 1})
    await session.send_tool_result(call_id, {"answer": 42})
    out = await server.wait_for("conversation.item.create")
    assert json.loads(out["item"]["output"]) == {"answer": 42}
    await server.wait_for("response.create")
    await session.stop()


async def test_tool_approval_approve_and_reject(server: FakeRealtimeServer) -> None:
    session = await start(server, rt.agent("A", "x", tools=[delete_account]))
    got = Collector()
    session.subscribe(got)
    c1 = await server.call_tool("delete_account", {"user": "bob"})
    req = await got.wait(ev.RealtimeToolApprovalRequiredEvent)
    assert req.call_id == c1 and req.parsed_args() == {"user": "bob"}
    await asyncio.sleep(0.05)
    assert server.events("conversation.item.create") == []  # nothing runs before approval
    await session.approve_tool_call(c1)
    out = await server.wait_for("conversation.item.create")
    assert out["item"]["output"] == "deleted bob"
    await server.wait_for("response.create")
    await asyncio.sleep(0.05)  # let the server start (and finish) that response before scripting the next
    await server.wait_idle()
    c2 = await server.call_tool("delete_account", {"user": "eve"})
    await got.wait(ev.RealtimeToolApprovalRequiredEvent, count=2)
    await session.reject_tool_call(c2, "Not allowed.")
    out = await server.wait_for("conversation.item.create")
    assert out["item"].pop("id").startswith("fv_item_")  # a client id: its ack is recognised
    assert out["item"] == {"type": "function_call_output", "call_id": c2, "output": "Not allowed."}
    with pytest.raises(ValueError, match="waiting for approval"):
        await session.approve_tool_call(c2)
    await session.stop()


async def test_handoff_switches_agent(server: FakeRealtimeServer) -> None:
    billing = rt.agent("Billing", "You handle billing.", tools=[get_weather])
    config = rt.RunConfig(
        model_settings=rt.SessionModelSettings(voice="coral", output_audio_format="g711_ulaw")
    )
    agent = rt.agent("Triage", "Route.", handoffs=[billing])
    session = await start(server, agent, config=config)
    got = Collector()
    session.subscribe(got)
    await server.wait_for("session.update")
    call_id = await server.call_tool("transfer_to_billing")
    handoff = await got.wait(ev.RealtimeHandoffEvent)
    assert handoff.from_agent is agent and handoff.to_agent is billing
    assert session.agent is billing
    update = await server.wait_for("session.update")
    assert update == rt.build_agent_update(billing, config, model=session.model)
    assert update["session"]["audio"]["output"]["voice"] == "coral"
    assert update["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    out = await server.wait_for("conversation.item.create")
    assert out["item"]["call_id"] == call_id and json.loads(out["item"]["output"]) == {"assistant": "Billing"}
    await server.wait_for("response.create")
    order = [f.data["type"] for f in server.received if f.data][-3:]
    assert order == ["session.update", "conversation.item.create", "response.create"]
    assert server.session["instructions"] == "You handle billing."
    # update_agent does the same switch on request.
    await session.update_agent(agent)
    update = await server.wait_for("session.update")
    assert update["session"]["instructions"] == "Route."
    await session.stop()


async def test_user_transcripts_and_states_from_server_vad(server: FakeRealtimeServer) -> None:
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(turn_detection=None))
    server.on_commit(ScriptedResponse(audio=[pcm(20)], transcript="Sure."), transcript="What time is it?")
    session = await start(server, config=config)
    got = Collector()
    session.subscribe(got)
    await session.send_audio(pcm(200), commit=True)
    done = await got.wait(ev.RealtimeTranscriptEvent, role="user", is_final=True)
    assert done.text == "What time is it?"
    delta = got.of(ev.RealtimeTranscriptEvent)[0]
    assert (delta.role, delta.text, delta.is_final) == ("user", "What time is it?", False)
    await got.wait(ev.RealtimeAgentEndEvent)
    assert server.input_audio == pcm(200)
    await got.wait(ev.RealtimeHistoryUpdatedEvent)
    hist = session.history
    user = [h for h in hist if isinstance(h, ev.UserMessageItem)]
    assert user and user[0].transcript == "What time is it?"
    await session.stop()


async def test_beta_event_names_understood() -> None:
    async with FakeRealtimeServer(beta_event_names=True) as server:
        server.on_response_create(ScriptedResponse(audio=[pcm(20), pcm(20)], transcript="Hi"))
        session = await start(server)
        got = Collector()
        session.subscribe(got)
        await session.send_message("x")
        await got.wait(ev.RealtimeAgentEndEvent)
        assert b"".join(e.audio for e in got.of(ev.RealtimeAudioEvent)) == pcm(20) * 2
        assert [e.text for e in got.of(ev.RealtimeTranscriptEvent)] == ["Hi", "Hi"]
        assert got.of(ev.RealtimeAudioEndEvent)
        assert not got.of(ev.RealtimeErrorEvent)
        await session.stop()
        assert server.invalid_frames == []


async def test_malformed_and_unknown_events_do_not_stop_the_session(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(text="still here"))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await server.send_raw("{not json")
    await server.send_raw(json.dumps({"type": "future.event", "x": 1}))
    await server.send_raw(json.dumps({"type": "response.output_audio.delta", "delta": "!!"}))
    err = await got.wait(ev.RealtimeErrorEvent)
    assert "malformed JSON" in str(err.error)
    raw = await got.wait(ev.RealtimeRawModelEvent)
    assert raw.data == {"type": "future.event", "x": 1}
    await got.wait(ev.RealtimeErrorEvent, count=2)
    await session.send_message("still alive?")
    done = await got.wait(ev.RealtimeTranscriptEvent, is_final=True)
    assert done.text == "still here"
    await session.stop()


async def test_server_error_event_and_raw_events_option(server: FakeRealtimeServer) -> None:
    session = await start(server, raw_events=True)
    got = Collector()
    session.subscribe(got)
    await server.send(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "code": "scripted", "message": "bad thing"},
        }
    )
    err = await got.wait(ev.RealtimeErrorEvent)
    assert err.error["message"] == "bad thing"
    raws = [e.data["type"] for e in got.of(ev.RealtimeRawModelEvent)]
    assert "error" in raws
    await session.stop()


async def test_debug_log_shows_frame_types_never_keys_or_audio(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fastvoice")
    audio = pcm(100)
    server.on_response_create(ScriptedResponse(audio=[audio]))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_audio(audio)
    await session.send_message("hello")
    await got.wait(ev.RealtimeAgentEndEvent)
    await session.stop()
    text = caplog.text
    assert "send session.update" in text and "recv response.done" in text
    assert KEY not in text and KEY[-8:] not in text
    b64 = base64.b64encode(audio).decode()
    assert b64[:40] not in text
    assert "hello" not in text


async def test_session_telemetry_start_stop_and_audio(server: FakeRealtimeServer) -> None:
    seen: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    names = [
        telemetry.REALTIME_SESSION_START,
        telemetry.REALTIME_SESSION_STOP,
        telemetry.REALTIME_AUDIO_SENT,
        telemetry.REALTIME_AUDIO_RECEIVED,
    ]
    telemetry.attach_many("s", names, lambda n, m, md, c: seen.append((".".join(n[-2:]), dict(m), dict(md))))
    server.on_response_create(ScriptedResponse(audio=[pcm(20), pcm(40)]))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_audio(pcm(20))
    await session.send_message("x")
    await got.wait(ev.RealtimeAgentEndEvent)
    await session.stop()
    kinds = [s[0] for s in seen]
    assert kinds[0] == "session.start" and kinds[-1] == "session.stop"
    assert [s[1]["bytes"] for s in seen if s[0] == "audio.sent"] == [960]
    assert [s[1]["bytes"] for s in seen if s[0] == "audio.received"] == [960, 1920]
    stop = seen[-1]
    assert stop[1]["audio_bytes_received"] == 2880 and stop[1]["audio_bytes_sent"] == 960
    assert stop[1]["duration"] > 0 and stop[2]["session_id"] == session.session_id


async def test_runner_run_returns_a_session(server: FakeRealtimeServer) -> None:
    runner = rt.Runner(ASSISTANT, config=rt.RunConfig())
    session = await runner.run(api_key=KEY, url=server.url)
    assert isinstance(session, rt.Session)
    await server.wait_for("session.update")
    await session.stop()


async def test_output_guardrail_trips_cancels_and_tells_the_model(server: FakeRealtimeServer) -> None:
    def no_secrets(text: str) -> bool:
        return "password" in text

    agent = rt.agent("A", "x", output_guardrails=[no_secrets])
    config = rt.RunConfig(guardrail_debounce_chars=10)
    words = ["The ", "admin ", "password ", "is ", "hunter2 ", "and ", "more"] + ["blah "] * 30
    server.on_response_create(
        [ScriptedResponse(audio=[pcm(20)] * len(words), transcript=words, delta_interval_s=0.02)]
    )
    session = await start(server, agent, config=config)
    got = Collector()
    session.subscribe(got)
    await session.send_message("tell me the password")
    tripped = await got.wait(ev.RealtimeGuardrailTrippedEvent)
    assert tripped.guardrail == "no_secrets" and "password" in tripped.text
    await server.wait_for("response.cancel")
    note = await server.wait_for("conversation.item.create")  # the user's message
    note = await server.wait_for("conversation.item.create")
    assert note["item"]["role"] == "system" and "no_secrets" in note["item"]["content"][0]["text"]
    await got.wait(ev.RealtimeAgentEndEvent)
    await server.wait_for("response.create")
    await server.wait_for("response.create")  # the model is asked to answer again
    # The cancelled response's remaining transcript never reached subscribers.
    deltas = "".join(e.text for e in got.of(ev.RealtimeTranscriptEvent) if not e.is_final)
    assert "blah blah blah blah blah blah blah blah blah" not in deltas
    assert len(got.of(ev.RealtimeGuardrailTrippedEvent)) == 1
    await session.stop()


async def test_scripted_tool_call_with_message_in_one_response(server: FakeRealtimeServer) -> None:
    agent = rt.agent("A", "x", tools=[get_weather])
    session = await start(server, agent)
    got = Collector()
    session.subscribe(got)
    await server.respond(
        ScriptedResponse(
            audio=[pcm(20)],
            transcript="Let me check.",
            tool_calls=[ScriptedToolCall("get_weather", {"city": "Rome"})],
        )
    )
    end = await got.wait(ev.RealtimeToolEndEvent)
    assert end.output == "Sunny in Rome"
    assert len(got.of(ev.RealtimeToolCallEvent)) == 1  # output_item.done and response.done: handled once
    await server.wait_for("response.create")
    await session.stop()
