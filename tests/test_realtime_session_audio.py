"""Session audio: truncation values, send_audio resampling and validation, G.711, reconnection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from fastvoice import audio
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import Collector, pcm, server, start

__all__ = ["server"]  # the fixture, imported for these tests

LONG = ScriptedResponse(audio=[pcm(20)] * 200, delta_interval_s=0.005)  # 4 s of audio in ~1 s


async def speaking(
    server: FakeRealtimeServer, config: rt.RunConfig | None = None
) -> tuple[rt.Session, Collector]:
    server.on_response_create(LONG)
    session = await start(server, config=config)
    got = Collector()
    session.subscribe(got)
    await session.send_message("Tell me a story")
    await got.wait(ev.RealtimeAudioEvent)
    return session, got


async def test_interrupt_truncates_at_wall_clock_estimate(server: FakeRealtimeServer) -> None:
    session, got = await speaking(server)
    t_first = got.times[got.events.index(got.of(ev.RealtimeAudioEvent)[0])]
    await asyncio.sleep(0.3)
    before = (time.monotonic() - t_first) * 1000
    await session.interrupt()
    after = (time.monotonic() - t_first) * 1000
    truncate = await server.wait_for("conversation.item.truncate")
    received_ms = sum(len(e.audio) for e in got.of(ev.RealtimeAudioEvent)) / 48
    # What was heard: time since the first delta (not the ~1200 ms received), at most what was received.
    assert before - 5 <= truncate["audio_end_ms"] <= after + 5
    assert truncate["audio_end_ms"] < received_ms
    assert server.truncations == [truncate]  # the server accepted it
    intr = await got.wait(ev.RealtimeAudioInterruptedEvent)
    assert (intr.item_id, intr.audio_end_ms) == (truncate["item_id"], truncate["audio_end_ms"])
    await server.wait_for("response.cancel")
    n = len(got.of(ev.RealtimeAudioEvent))
    await got.wait(ev.RealtimeAgentEndEvent)
    await asyncio.sleep(0.05)
    assert len(got.of(ev.RealtimeAudioEvent)) == n  # deltas of the interrupted response are dropped
    await session.stop()


async def test_interrupt_uses_reported_playback(server: FakeRealtimeServer) -> None:
    session, got = await speaking(server)
    await got.wait(ev.RealtimeAudioEvent, count=10)
    first = got.of(ev.RealtimeAudioEvent)[0]
    session.playback.played(first.item_id, n_bytes=len(first.audio) * 3 + 48 * 7)  # 67 ms
    session.playback.played("other_item", ms=5000)  # not the current item: ignored
    await session.interrupt()
    truncate = await server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 67
    await session.stop()


async def test_interrupt_uses_ring_buffer_consumed_and_clears_it(server: FakeRealtimeServer) -> None:
    server.on_response_create(LONG)
    session = await start(server)
    ring = audio.RingBuffer(24000 * 10)
    session.playback.use_ring_buffer(ring)
    got = Collector()
    session.subscribe(got)
    await session.send_message("story")
    await got.wait(ev.RealtimeAudioEvent, count=10)
    out = np.zeros(24 * 123, dtype=np.int16)
    assert ring.read_into(out) == out.size  # the "audio callback" played 123 ms
    first = got.of(ev.RealtimeAudioEvent)[0]
    assert out.tobytes() == b"".join(e.audio for e in got.of(ev.RealtimeAudioEvent))[: out.size * 2]
    assert session.playback.source == "ring_buffer"
    await session.interrupt()
    truncate = await server.wait_for("conversation.item.truncate")
    assert truncate["audio_end_ms"] == 123 and truncate["item_id"] == first.item_id
    assert ring.available == 0  # playback stops at once
    await session.stop()


async def test_server_vad_barge_in_truncates_without_cancel(server: FakeRealtimeServer) -> None:
    session, got = await speaking(server)
    t_first = got.times[got.events.index(got.of(ev.RealtimeAudioEvent)[0])]
    await asyncio.sleep(0.2)
    await server.speech_started()
    truncate = await server.wait_for("conversation.item.truncate")
    assert 195 <= truncate["audio_end_ms"] <= (time.monotonic() - t_first) * 1000 + 5
    await got.wait(ev.RealtimeAgentStateEvent, state="listening")
    await got.wait(ev.RealtimeAgentEndEvent)
    await asyncio.sleep(0.05)
    assert server.events("response.cancel") == []  # interrupt_response: the server cancelled itself
    await session.stop()


async def test_barge_in_cancels_when_server_will_not(server: FakeRealtimeServer) -> None:
    td = rt.TurnDetectionConfig(type="server_vad", interrupt_response=False)
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(turn_detection=td))
    session, got = await speaking(server, config)
    await asyncio.sleep(0.1)
    await server.speech_started()
    await server.wait_for("conversation.item.truncate")
    await server.wait_for("response.cancel")
    await got.wait(ev.RealtimeAgentEndEvent)
    await session.stop()


async def test_no_truncate_after_playback_finished(server: FakeRealtimeServer) -> None:
    server.on_response_create(ScriptedResponse(audio=[pcm(20)]))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await session.send_message("short")
    await got.wait(ev.RealtimeAgentEndEvent)
    await asyncio.sleep(0.05)  # 20 ms of audio has been played by now
    await session.interrupt()
    await asyncio.sleep(0.05)
    assert server.events("conversation.item.truncate") == []
    assert server.events("response.cancel") == []
    await session.stop()


def tone(rate: int, ms: int, freq: float, dtype: str) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    x = 0.4 * np.sin(2 * np.pi * freq * t)
    return x.astype(dtype) if dtype != "int16" else (x * 32767).astype(np.int16)


@pytest.mark.parametrize(("rate", "dtype"), [(16000, "float32"), (48000, "float32"), (16000, "int16")])
async def test_send_audio_resampled_to_24k(server: FakeRealtimeServer, rate: int, dtype: str) -> None:
    session = await start(server)
    x = tone(rate, 1000, 1000.0, dtype)
    step = rate // 50  # 20 ms chunks through one persistent resampler
    for i in range(0, len(x), step):
        chunk = x[i : i + step]
        await session.send_audio(chunk.tobytes() if dtype == "int16" else chunk, sample_rate=rate)
    await session.commit_audio()
    await server.wait_for("input_audio_buffer.commit")
    got = np.frombuffer(server.input_audio, dtype="<i2").astype(np.float64) / 32768
    # Length: one second at 24 kHz (plus the resampler's few-ms flushed tail).
    assert 24000 <= len(got) <= 24000 + 24 * 12
    # Content: a 1 kHz tone of the same level, checked against numpy's FFT.
    seg = got[2400:21600]
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    peak_hz = np.argmax(spectrum) * 24000 / len(seg)
    assert abs(peak_hz - 1000.0) < 2.0
    assert abs(np.sqrt(np.mean(seg**2)) - 0.4 / np.sqrt(2)) < 0.01
    await session.stop()


async def test_send_audio_24k_passes_through_exactly(server: FakeRealtimeServer) -> None:
    session = await start(server)
    data = pcm(100)
    await session.send_audio(data)
    arr = np.frombuffer(pcm(20, 600), dtype="<i2")
    await session.send_audio(arr)
    f = np.array([0.5, -0.25, 1.5, -2.0], dtype=np.float32)
    await session.send_audio(f)
    await session.commit_audio()
    await server.wait_for("input_audio_buffer.commit")
    expected_f = np.array([16384, -8192, 32767, -32768], dtype="<i2").tobytes()
    assert server.input_audio == data + arr.tobytes() + expected_f
    await session.stop()


async def test_send_audio_bad_input_raises_clear_errors(server: FakeRealtimeServer) -> None:
    session = await start(server)
    with pytest.raises(audio.AudioFormatError, match="even length"):
        await session.send_audio(b"\x00\x01\x02")
    with pytest.raises(audio.AudioFormatError, match="dtype int32"):
        await session.send_audio(np.zeros(10, dtype=np.int32))
    with pytest.raises(audio.AudioFormatError, match="NaN"):
        await session.send_audio(np.array([0.1, np.nan], dtype=np.float32))
    with pytest.raises(audio.AudioFormatError, match="mono"):
        await session.send_audio(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(audio.AudioFormatError, match="sample_rate"):
        await session.send_audio(b"\x00\x00", sample_rate=10)
    with pytest.raises(TypeError):
        await session.send_audio([0, 1, 2])
    assert isinstance(audio.AudioFormatError("x"), ValueError)
    await asyncio.sleep(0.05)
    assert server.events("input_audio_buffer.append") == []  # nothing bad reached the wire
    await session.stop()


@pytest.mark.parametrize(
    ("fmt", "encode", "decode"),
    [
        ("g711_ulaw", audio.ulaw_encode, audio.ulaw_decode),
        ("g711_alaw", audio.alaw_encode, audio.alaw_decode),
    ],
)
async def test_g711_session_formats(server: FakeRealtimeServer, fmt: str, encode: Any, decode: Any) -> None:
    settings = rt.SessionModelSettings(input_audio_format=fmt, output_audio_format=fmt)
    codes = encode(tone(8000, 100, 300.0, "int16").tobytes())
    server.on_response_create(ScriptedResponse(audio=[codes[:81], codes[81:]]))  # odd-length chunk too
    session = await start(server, config=rt.RunConfig(model_settings=settings))
    got = Collector()
    session.subscribe(got)
    x8k = tone(8000, 100, 300.0, "int16")
    await session.send_audio(x8k.tobytes(), sample_rate=8000)
    await session.send_message("hi")
    await got.wait(ev.RealtimeAgentEndEvent)
    assert server.input_audio == encode(x8k.tobytes())  # encoded natively, one byte per sample
    assert b"".join(e.audio for e in got.of(ev.RealtimeAudioEvent)) == codes  # delivered as G.711 bytes
    # Barge-in accounting uses 8 kHz, 1 byte per sample.
    assert session.playback.received_ms == pytest.approx(100.0)
    assert decode(codes)  # sanity: decodable
    await session.stop()


async def test_reconnect_restores_session_history_and_outage_audio() -> None:
    config = rt.RunConfig(reconnect=rt.ReconnectConfig(initial_delay_s=0.05, max_buffered_audio_bytes=4800))
    async with FakeRealtimeServer() as server:
        server.on_response_create([ScriptedResponse(text="First answer.")])
        session = await start(server, config=config)
        got = Collector()
        session.subscribe(got)
        await session.send_message("Remember: blue.")
        await got.wait(ev.RealtimeAgentEndEvent)
        await server.drop()
        await got.wait(ev.RealtimeConnectionEvent, status="reconnecting")
        # Audio submitted during the outage: 150 ms, the buffer holds 100 ms; the oldest 50 ms are dropped.
        for i in range(3):
            await session.send_audio(pcm(50, 300 + 100 * i))
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        assert any(isinstance(e.error, Exception) for e in got.of(ev.RealtimeErrorEvent))
        info = await server.wait_for_connection(2)
        await asyncio.sleep(0.1)
        frames = [f.data for f in server.received if f.connection == info.index and f.data]
        assert frames[0] == rt.build_session_update(session.agent, config)
        replay = [f for f in frames if f["type"] == "conversation.item.create"]
        assert [r["item"]["content"][0]["text"] for r in replay] == ["Remember: blue.", "First answer."]
        assert bytes(info.input_audio) == pcm(50, 400) + pcm(50, 500)
        assert session.dropped_audio_bytes == 2400
        assert session.reconnects == 1
        # The session works on the new connection.
        server.on_response_create(ScriptedResponse(text="Blue."))
        await session.send_message("What colour?")
        done = await got.wait(ev.RealtimeTranscriptEvent, is_final=True, text="Blue.")
        assert done.role == "assistant"
        await session.stop()
        assert server.invalid_frames == []


async def test_connection_lost_for_good_ends_session_cleanly() -> None:
    config = rt.RunConfig(reconnect=rt.ReconnectConfig(max_attempts=2, initial_delay_s=0.01))
    server = await FakeRealtimeServer().start()
    session = await start(server, config=config)
    got = Collector()
    session.subscribe(got)
    await server.stop()  # server gone: close frame 1001 "going away", then every reconnect is refused
    end = await got.wait(ev.RealtimeConnectionEvent, status="disconnected", timeout=10)
    assert "ConnectError" in (end.reason or "")
    attempts = [e.attempt for e in got.of(ev.RealtimeConnectionEvent) if e.status == "reconnecting"]
    assert attempts == [1, 2]
    assert session.closed
    with pytest.raises(rt.SessionClosedError):
        await session.send_message("anyone?")
    await session.stop()
    assert server.invalid_frames == []


async def test_drop_without_reconnect_closes(server: FakeRealtimeServer) -> None:
    session = await start(server, reconnect=False)
    got = Collector()
    session.subscribe(got)
    await server.drop()
    await got.wait(ev.RealtimeConnectionEvent, status="disconnected")
    await got.wait(ev.RealtimeErrorEvent)
    assert not got.of(ev.RealtimeConnectionEvent)[1:-1]  # no reconnect attempts
    assert session.closed
    await asyncio.sleep(0)  # the event loop is fine


async def test_clean_server_close_ends_session_without_reconnecting(server: FakeRealtimeServer) -> None:
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    await server.close(1000, "bye")
    end = await got.wait(ev.RealtimeConnectionEvent, status="disconnected")
    assert "1000" in (end.reason or "")
    assert not [e for e in got.of(ev.RealtimeConnectionEvent) if e.status == "reconnecting"]
    assert len(server.connections) == 1
    with pytest.raises(rt.SessionClosedError):
        await session.commit_audio()
