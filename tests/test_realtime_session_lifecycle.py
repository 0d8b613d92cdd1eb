"""Session lifecycle and observability: OpenTelemetry spans, start/stop edge cases, agent state timing, the
``async for`` backlog."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastvoice import realtime as rt
from fastvoice import telemetry
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import ASSISTANT, KEY, Collector, get_weather, pcm, server, start

__all__ = ["server"]  # the fixture, imported for these tests


async def test_opentelemetry_spans_for_session_and_tool(server: FakeRealtimeServer) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk not installed")
    export = pytest.importorskip("opentelemetry.sdk.trace.export", reason="opentelemetry-sdk not installed")
    in_memory = pytest.importorskip(
        "opentelemetry.sdk.trace.export.in_memory_span_exporter", reason="opentelemetry-sdk not installed"
    )
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    saved = telemetry._otel_tracer, telemetry._otel_checked
    telemetry._otel_tracer, telemetry._otel_checked = provider.get_tracer("fastvoice"), True
    try:
        session = await start(server, rt.agent("A", "x", tools=[get_weather]))
        got = Collector()
        session.subscribe(got)
        await server.call_tool("get_weather", {"city": "Oslo"})
        await got.wait(ev.RealtimeToolEndEvent)
        await session.stop()
    finally:
        telemetry._otel_tracer, telemetry._otel_checked = saved
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"fastvoice.realtime.session", "fastvoice.realtime.tool"}
    assert spans["fastvoice.realtime.tool"].attributes["tool"] == "get_weather"
    assert spans["fastvoice.realtime.session"].attributes["session_id"] == session.session_id
    tool, sess = spans["fastvoice.realtime.tool"], spans["fastvoice.realtime.session"]
    assert sess.start_time <= tool.start_time <= tool.end_time <= sess.end_time


async def test_not_started_session_and_stop_from_a_subscriber(server: FakeRealtimeServer) -> None:
    session = rt.Session(ASSISTANT, api_key=KEY, url=server.url)
    with pytest.raises(RuntimeError, match="not started"):
        await session.send_message("too early")
    assert server.connections == []
    stopped = asyncio.Event()

    async def stop_on_end(event: Any) -> None:
        if isinstance(event, ev.RealtimeAgentEndEvent):
            await session.stop()  # from inside the session's own delivery: must not deadlock
            stopped.set()

    server.on_response_create(ScriptedResponse(text="bye"))
    session.subscribe(stop_on_end)
    async with session:  # starts it
        await session.send_message("hi")
        await asyncio.wait_for(stopped.wait(), 5)
        assert session.closed


async def test_state_goes_idle_once_the_reply_has_been_heard(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 10))  # 200 ms, sent at once
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_message("hi")
    await got.wait(ev.RealtimeAgentEndEvent)
    t_end = got.times[got.events.index(got.of(ev.RealtimeAgentEndEvent)[0])]
    t_first = got.times[got.events.index(got.of(ev.RealtimeAudioEvent)[0])]
    assert session.state == "speaking"  # still playing (wall-clock estimate)
    idle = await got.wait(ev.RealtimeAgentStateEvent, state="idle", timeout=2)
    t_idle = got.times[got.events.index(idle)]
    assert t_idle >= t_end and 0.19 <= t_idle - t_first <= 0.5
    states = [e.state for e in got.of(ev.RealtimeAgentStateEvent)]
    assert states == ["thinking", "speaking", "idle"]
    await session.stop()


async def test_async_for_backlog_is_bounded_and_dropped_when_subscribing(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 50))
    session = await start(server, event_buffer=8)
    await session.send_message("hi")
    await server.wait_for("response.create")
    await server.wait_idle()
    await asyncio.sleep(0.1)
    stream = session.__aiter__()
    backlog = [await stream.__anext__() for _ in range(8)]
    assert stream.dropped > 40  # older events were dropped, not kept forever
    assert isinstance(backlog[-1], ev.RealtimeAgentEndEvent | ev.RealtimeHistoryUpdatedEvent)

    # An app that subscribes first keeps no backlog at all; `async for` later starts from then on.
    session2 = await start(server)
    got = Collector()
    session2.subscribe(got)
    assert not session2._stream_attached
    server.on_response_create(ScriptedResponse(text="later"))
    it = session2.__aiter__()
    await session2.send_message("x")
    first = await asyncio.wait_for(it.__anext__(), 5)
    assert first is got.events[0]  # the same object both ways, nothing from before iterating
    await session.stop()
    await session2.stop()


async def test_send_raw_passes_any_client_event(server: FakeRealtimeServer) -> None:
    session = await start(server)
    await session.send_raw({"type": "input_audio_buffer.clear", "event_id": "my_clear"})
    assert (await server.wait_for("input_audio_buffer.clear"))["event_id"] == "my_clear"
    with pytest.raises(ValueError, match="string 'type'"):
        await session.send_raw({"no": "type"})
    await session.stop()


async def test_g711_playback_ring_buffer_gets_decoded_pcm(server: FakeRealtimeServer) -> None:
    from fastvoice import audio

    settings = rt.SessionModelSettings(output_audio_format="g711_alaw")
    codes = audio.alaw_encode(pcm(40)[::3][: 8 * 40 * 2])  # 40 ms at 8 kHz
    server.on_response_create(ScriptedResponse(audio=[codes[:161], codes[161:]]))
    session = await start(server, config=rt.RunConfig(model_settings=settings))
    ring = audio.RingBuffer(8000)
    session.playback.use_ring_buffer(ring)
    got = Collector()
    session.subscribe(got)
    await session.send_message("hi")
    await got.wait(ev.RealtimeAgentEndEvent)
    assert ring.read().tobytes() == audio.alaw_decode(codes)
    assert session.playback.played_ms == pytest.approx(len(codes) / 8)  # 1 byte per sample at 8 kHz
    await session.stop()


async def test_refused_key_is_a_clear_connect_error() -> None:
    from fastvoice import transport

    async with FakeRealtimeServer(api_key="sk-the-right-key-1234") as server:
        with pytest.raises(transport.ConnectError) as info:
            await rt.start_session(ASSISTANT, api_key="sk-the-wrong-key-5678", url=server.url)
        assert info.value.status == 401
        assert "wrong-key" not in str(info.value)
        session = await rt.start_session(ASSISTANT, api_key="sk-the-right-key-1234", url=server.url)
        await server.wait_for("session.update")
        await session.stop()
