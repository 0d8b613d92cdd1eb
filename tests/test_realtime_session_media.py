"""Sessions with native audio I/O: playback ring filled by the transport (``audio_events=False``), microphone
ring pumped by the transport (``stream_audio_from``), interruption, commit and reconnection with both."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fastvoice import audio
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import Collector, pcm, server, start

__all__ = ["server"]  # the fixture, imported for these tests

LONG = ScriptedResponse(audio=[pcm(20, 300.0 + i) for i in range(200)], delta_interval_s=0.005)


async def _until(cond: object, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_native_playback_fills_the_ring_without_audio_events(server: FakeRealtimeServer) -> None:
    chunks = [pcm(20, 200.0 + 10 * i) for i in range(12)]
    server.on_response_create(ScriptedResponse(audio=chunks, transcript="Hi there"))
    session = await start(server)
    speaker = audio.RingBuffer(24000 * 5)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    assert session.playback.native
    got = Collector()
    session.subscribe(got)
    await session.send_message("hello")
    end = await got.wait(ev.RealtimeAudioEndEvent)
    await got.wait(ev.RealtimeAgentEndEvent)
    assert got.of(ev.RealtimeAudioEvent) == []  # no per-chunk events
    await got.wait(ev.RealtimeAgentStateEvent, state="speaking")
    assert session.playback.item_id == end.item_id
    assert session.playback.received_bytes == sum(map(len, chunks))
    assert speaker.read().tobytes() == b"".join(chunks)  # the "speaker" plays everything
    await got.wait(ev.RealtimeAgentStateEvent, state="idle")  # all of it heard: idle
    await got.wait(ev.RealtimeTranscriptEvent, is_final=True)
    await session.stop()


async def telling_a_story(server: FakeRealtimeServer) -> tuple[rt.Session, audio.RingBuffer, Collector]:
    """A session with native playback into a 10 s speaker ring, asked for a 4 s answer."""
    server.on_response_create(LONG)
    session = await start(server)
    speaker = audio.RingBuffer(24000 * 10)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    got = Collector()
    session.subscribe(got)
    await session.send_message("story")
    return session, speaker, got


async def test_native_playback_interrupt_truncates_at_what_was_played(server: FakeRealtimeServer) -> None:
    session, speaker, got = await telling_a_story(server)
    await got.wait(ev.RealtimeAgentStateEvent, state="speaking")
    await _until(lambda: speaker.written >= 24 * 300)
    played = speaker.read(24 * 123)  # the audio callback played 123 ms
    assert played.tobytes() == b"".join(LONG.audio)[: 24 * 123 * 2]
    await session.interrupt()
    truncate = await server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 123
    intr = await got.wait(ev.RealtimeAudioInterruptedEvent)
    assert intr.item_id == truncate["item_id"]
    assert speaker.available == 0  # playback stops at once
    await server.wait_for("response.cancel")
    await got.wait(ev.RealtimeAgentEndEvent)
    await asyncio.sleep(0.05)
    assert speaker.available == 0  # nothing of the interrupted response landed afterwards
    await session.stop()


async def test_server_barge_in_with_native_playback(server: FakeRealtimeServer) -> None:
    session, speaker, got = await telling_a_story(server)
    await _until(lambda: speaker.written >= 24 * 200)
    speaker.read(24 * 50)
    await server.speech_started()
    truncate = await server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 50
    await got.wait(ev.RealtimeAgentStateEvent, state="listening")
    assert speaker.available == 0
    await session.stop()


async def test_stream_audio_from_a_microphone_ring_then_commit(server: FakeRealtimeServer) -> None:
    server.on_commit(ScriptedResponse(audio=[pcm(20)], transcript="ok"))
    session = await start(server)
    mic = audio.RingBuffer(24000 * 2, dtype="float32")
    session.stream_audio_from(mic)
    rng = np.random.default_rng(7)
    said = rng.uniform(-0.5, 0.5, 24 * 300).astype(np.float32)
    for part in np.array_split(said, 15):  # a device callback delivering 20 ms blocks
        mic.write(part)
        await asyncio.sleep(0.004)
    await session.commit_audio()
    await server.wait_for("input_audio_buffer.commit")
    assert server.input_audio == audio.to_pcm16(said)  # the PCM16 rule, natively, nothing lost or reordered
    got = [e["type"] for e in server.events() if e["type"].startswith("input_audio_buffer")]
    assert got[-1] == "input_audio_buffer.commit"
    assert server.received[0].data["type"] == "session.update"  # the pump never goes first
    session.stream_audio_from(None)
    mic.write(said[:480])
    await asyncio.sleep(0.06)
    assert len(server.input_audio) == said.size * 2  # stopped
    await session.stop()


async def test_stream_audio_from_g711_session_and_bad_arguments(server: FakeRealtimeServer) -> None:
    fmt = rt.SessionModelSettings(input_audio_format="g711_ulaw", output_audio_format="g711_ulaw")
    session = await start(server, config=rt.RunConfig(model_settings=fmt))
    mic = audio.RingBuffer(8000)
    said = (np.sin(np.arange(1600) / 7) * 12000).astype(np.int16)
    mic.write(said)
    with pytest.raises(TypeError):
        session.stream_audio_from(b"pcm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_ms"):
        session.stream_audio_from(mic, chunk_ms=0)
    session.stream_audio_from(mic, pace=True)
    await _until(lambda: len(server.input_audio) == 1600)
    assert server.input_audio == audio.ulaw_encode(said)
    await session.stop()
    with pytest.raises(rt.SessionClosedError):
        session.stream_audio_from(mic)


async def test_native_io_survives_a_reconnect(server: FakeRealtimeServer) -> None:
    cfg = rt.RunConfig(reconnect=rt.ReconnectConfig(initial_delay_s=0.01, max_attempts=3))
    session = await start(server, config=cfg)
    speaker = audio.RingBuffer(24000 * 5)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    mic = audio.RingBuffer(24000)
    session.stream_audio_from(mic)
    got = Collector()
    session.subscribe(got)
    mic.write(np.full(480, 1000, np.int16))
    await _until(lambda: len(server.input_audio) == 960)
    await server.drop()
    mic.write(np.full(480, 2000, np.int16))  # spoken during the outage: kept by the ring
    await got.wait(ev.RealtimeConnectionEvent, status="connected")
    # The new server session gets the audio the old one never committed, then what was spoken meanwhile.
    await _until(lambda: len(server.connections[1].input_audio) == 1920)
    said = np.concatenate([np.full(480, 1000, np.int16), np.full(480, 2000, np.int16)])
    assert bytes(server.connections[1].input_audio) == said.tobytes()
    chunks = [pcm(20, 500.0), pcm(20, 600.0)]
    await server.respond(ScriptedResponse(audio=chunks))
    await _until(lambda: speaker.written == 960)
    assert speaker.read().tobytes() == b"".join(chunks)
    assert got.of(ev.RealtimeAudioEvent) == []
    await session.stop()


async def test_native_playback_reports_a_malformed_delta_and_goes_on(server: FakeRealtimeServer) -> None:
    session = await start(server)
    speaker = audio.RingBuffer(24000)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    got = Collector()
    session.subscribe(got)
    head = '{"type":"response.output_audio.delta","event_id":"e1","response_id":"r1","item_id":"i1",'
    await server.send_raw(head + '"output_index":0,"content_index":0,"delta":"not base64!"}')
    await server.send_raw(head + '"output_index":0,"content_index":0,"delta":"AA=="}')  # 1 byte: not PCM16
    assert (await got.wait(ev.RealtimeErrorEvent)).error is not None
    await got.wait(ev.RealtimeErrorEvent, count=2)
    assert speaker.written == 0  # nothing half-decoded reached the speaker
    chunks = [pcm(20, 700.0)]
    await server.respond(ScriptedResponse(audio=chunks))  # and the session still plays the next response
    await _until(lambda: speaker.written == 480)
    assert speaker.read().tobytes() == chunks[0]
    await session.stop()
