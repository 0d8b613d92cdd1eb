"""A server that misbehaves: invalid audio deltas, malformed events, no ``session.updated``.

Each bad event must become one typed error event (and at most one log line, no traceback), never garbage
audio, and the session must keep working. FakeRealtimeServer's ``send_raw`` sends the bad frames unvalidated.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import fastvoice
import pytest
from fastvoice import _fastvoice, audio
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import KEY, Collector, pcm, server, start

__all__ = ["server"]  # the fixture, imported for these tests

BAD_DELTAS = ["AA==AAAA", "!!!!", "AAAA"]  # padding mid-payload, not base64 at all, 3 bytes (odd PCM16)


def delta_frame(delta: str, kind: str = "response.output_audio.delta", item: str = "i1") -> str:
    return (
        f'{{"type":"{kind}","event_id":"e_{item}","response_id":"r1","item_id":"{item}",'
        f'"output_index":0,"content_index":0,"delta":"{delta}"}}'
    )


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    records = [r for r in caplog.records if r.name == "fastvoice" and r.levelno >= logging.WARNING]
    assert [r for r in records if r.exc_info] == []  # one line each, no traceback
    assert all("\n" not in r.getMessage() for r in records)
    return records


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
async def test_invalid_audio_deltas_are_errors_not_audio(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # The native parser (decode_audio=True) refuses them, so they reach the session's strict decoding as text.
    for delta in BAD_DELTAS:
        with pytest.raises(ValueError):
            _fastvoice.parse_audio_delta(delta_frame(delta, kind))
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    for delta in BAD_DELTAS:
        await server.send_raw(delta_frame(delta, kind))
    chunk = pcm(20)
    await server.send_raw(delta_frame(base64.b64encode(chunk).decode(), kind, item="i2"))
    good = await got.wait(ev.RealtimeAudioEvent)
    assert good.audio == chunk and good.item_id == "i2"
    assert len(got.of(ev.RealtimeAudioEvent)) == 1  # no garbage audio of 0-6 bytes
    errors = got.of(ev.RealtimeErrorEvent)
    assert len(errors) == 3
    assert all(isinstance(e.error, fastvoice.AudioFormatError) for e in errors)
    assert all(kind in str(e.error) for e in errors)
    assert session.audio_bytes_received == len(chunk)
    assert len(no_tracebacks(caplog)) == 3
    await session.stop()


async def test_invalid_deltas_in_a_g711_session(server: FakeRealtimeServer) -> None:
    # G.711 deltas of odd length are valid (one byte a sample) and decoded in Python: only bad base64 fails.
    settings = rt.SessionModelSettings(output_audio_format="g711_ulaw")
    session = await start(server, config=rt.RunConfig(model_settings=settings))
    got = Collector()
    session.subscribe(got)
    for delta in BAD_DELTAS:
        await server.send_raw(delta_frame(delta))
    await got.wait(ev.RealtimeAudioEvent)
    await got.wait(ev.RealtimeErrorEvent, count=2)
    await asyncio.sleep(0.05)
    assert [e.audio for e in got.of(ev.RealtimeAudioEvent)] == [b"\x00\x00\x00"]  # "AAAA": 3 u-law codes
    assert [type(e.error) for e in got.of(ev.RealtimeErrorEvent)] == [fastvoice.AudioFormatError] * 2
    await session.stop()


async def test_invalid_deltas_never_reach_the_native_playback_ring(server: FakeRealtimeServer) -> None:
    session = await start(server)
    speaker = audio.RingBuffer(24000)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    got = Collector()
    session.subscribe(got)
    for delta in BAD_DELTAS:
        await server.send_raw(delta_frame(delta))
    await got.wait(ev.RealtimeErrorEvent, count=3)
    assert all(isinstance(e.error, fastvoice.AudioFormatError) for e in got.of(ev.RealtimeErrorEvent))
    assert speaker.written == 0
    assert session.audio_bytes_received == 0
    chunk = pcm(20, 700.0)
    await server.respond(ScriptedResponse(audio=[chunk]))
    await got.wait(ev.RealtimeAgentEndEvent)
    assert speaker.read().tobytes() == chunk
    assert session.audio_bytes_received == len(chunk)
    await session.stop()


MALFORMED = [
    ('{"type":"response.done","event_id":"x1","response":null}', "response.done"),
    ('{"type":"response.done","event_id":"x2","response":{"id":"r9","output":"nope"}}', "response.done"),
    ('{"type":"conversation.item.added","event_id":"x3","item":null}', "conversation.item.added"),
    ('{"type":"conversation.item.done","event_id":"x4","item":null}', "conversation.item.done"),
    ('{"type":"response.output_item.done","event_id":"x5","item":null}', "response.output_item.done"),
    ('{"type":"response.created","event_id":"x6","response":null}', "response.created"),
    ('{"type":"conversation.item.added","event_id":"x7","item":[1,2]}', "conversation.item.added"),
    ('{"type":"response.output_audio.done","event_id":"x8"}', "response.output_audio.done"),
]


async def test_malformed_server_events_are_one_clear_error_each(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    session = await start(server)
    got = Collector()
    session.subscribe(got)
    for frame, _ in MALFORMED:
        await server.send_raw(frame)
    await server.send_raw("[[[")  # not JSON
    await got.wait(ev.RealtimeErrorEvent, count=len(MALFORMED) + 1)
    errors = [e.error for e in got.of(ev.RealtimeErrorEvent)]
    assert all(isinstance(e, rt.events.ServerEventError) for e in errors)
    assert [e.event_type for e in errors] == [kind for _, kind in MALFORMED] + [None]
    assert all(e.event_type is None or e.event_type in str(e) for e in errors)
    assert len(no_tracebacks(caplog)) == len(errors)
    # The session goes on: a real response still works end to end.
    server.on_response_create(ScriptedResponse(text="Still here."))
    await session.send_message("hello?")
    final = await got.wait(ev.RealtimeTranscriptEvent, is_final=True, text="Still here.")
    assert final.role == "assistant"
    await session.stop()


class SilentServer(FakeRealtimeServer):
    """Accepts the connection and the session.update, never acknowledges it."""

    async def _on_session_update(self, conn: Any, event: dict[str, Any]) -> None:
        return None


async def test_ready_timeout_says_what_was_waited_for() -> None:
    async with SilentServer() as server:
        url = f"{server.url}?api-key=sk-in-the-query-123&model=gpt-realtime"
        with pytest.raises(TimeoutError) as info:
            await rt.start_session(rt.agent("A"), api_key=KEY, url=url, ready_timeout=0.3)
        message = str(info.value)
        assert "session.updated" in message and "0.3 s" in message
        assert f"ws://127.0.0.1:{server.port}/v1/realtime" in message
        assert "sk-in-the-query" not in message and KEY not in message
        await server.wait_for_disconnect()  # the half-open session was closed


def test_display_url_hides_credentials() -> None:
    from fastvoice.realtime.session import _display_url

    assert _display_url("wss://user:pw@example.com/v1/realtime?key=1#x") == "wss://example.com/v1/realtime"
