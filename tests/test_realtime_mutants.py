"""Checks for behaviour a mutation run showed nothing guarded: the ten Realtime voices on the wire, semantic
VAD eagerness on the wire, and `session.error` telemetry. Frames are those FakeRealtimeServer received."""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from fastvoice import realtime as rt
from fastvoice import telemetry
from fastvoice.realtime import config
from fastvoice.testing import FakeRealtimeServer
from openai.types.realtime import realtime_audio_config_output, realtime_audio_input_turn_detection

KEY = "sk-test-mutants-0123456789"
AGENT = rt.agent("A", "Be brief.")


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_key=KEY) as srv:
        yield srv
        assert srv.invalid_frames == [], [f.error for f in srv.invalid_frames]


@pytest.fixture(autouse=True)
def _clean_telemetry() -> typing.Iterator[None]:
    yield
    for h in telemetry.list_handlers():
        telemetry.detach(h.id)


async def _first_update(server: FakeRealtimeServer, settings: rt.SessionModelSettings) -> dict[str, Any]:
    before = len(server.events("session.update"))
    session = await rt.start_session(
        AGENT, rt.RunConfig(model_settings=settings), api_key=KEY, url=server.url
    )
    try:
        return server.events("session.update")[before]["session"]
    finally:
        await session.stop()


def _literal_values(annotation: Any) -> set[str]:
    out: set[str] = set()
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            out.update(typing.get_args(arg))
    return out


def test_the_ten_voices_are_the_apis_built_in_voices() -> None:
    api = _literal_values(
        realtime_audio_config_output.RealtimeAudioConfigOutput.model_fields["voice"].annotation
    )
    expected = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
    assert config.VOICES == expected
    assert set(config.VOICES) == api


async def test_each_voice_reaches_session_update_as_given(server: FakeRealtimeServer) -> None:
    sent = [
        (await _first_update(server, rt.SessionModelSettings(voice=v)))["audio"]["output"]["voice"]
        for v in config.VOICES
    ]
    assert sent == list(config.VOICES)
    assert len(server.connections) == 10


@pytest.mark.parametrize("voice", ["fable", "Alloy", "", "en-gb+m3", None])
def test_unknown_voice_is_refused_before_connecting(voice: Any) -> None:
    with pytest.raises(ValueError, match="voice"):
        rt.SessionModelSettings(voice=voice)


@pytest.mark.parametrize("eagerness", ["low", "high", "medium", "auto"])
async def test_semantic_vad_eagerness_reaches_the_wire_exactly(
    server: FakeRealtimeServer, eagerness: str
) -> None:
    td = rt.TurnDetectionConfig(type="semantic_vad", eagerness=eagerness)  # type: ignore[arg-type]
    update = await _first_update(server, rt.SessionModelSettings(turn_detection=td))
    assert update["audio"]["input"]["turn_detection"] == {"type": "semantic_vad", "eagerness": eagerness}
    api = realtime_audio_input_turn_detection.SemanticVad.model_fields["eagerness"].annotation
    assert eagerness in _literal_values(api)


@pytest.mark.parametrize("eagerness", ["LOW", "hi", "", 1])
def test_invalid_eagerness_is_refused(eagerness: Any) -> None:
    with pytest.raises(ValueError, match="eagerness"):
        rt.TurnDetectionConfig(type="semantic_vad", eagerness=eagerness)


def test_eagerness_only_for_semantic_vad() -> None:
    with pytest.raises(ValueError, match="eagerness only applies to type='semantic_vad'"):
        rt.TurnDetectionConfig(type="server_vad", eagerness="high")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    def __call__(self, name: tuple[str, ...], m: Mapping[str, Any], md: Mapping[str, Any], _cfg: Any) -> None:
        self.calls.append((name, dict(m), dict(md)))
        self.arrived.set()


async def test_session_error_telemetry_when_the_connection_drops(server: FakeRealtimeServer) -> None:
    rec = Recorder()
    telemetry.attach("mutants-error", telemetry.REALTIME_SESSION_ERROR, rec)
    session = await rt.start_session(AGENT, api_key=KEY, url=server.url)
    await server.wait_for("session.update")
    assert rec.calls == []
    t0 = time.monotonic_ns()
    await server.drop()
    await asyncio.wait_for(rec.arrived.wait(), 5)
    await server.wait_for_connection(2)  # reconnected
    await session.stop()
    [(name, measurements, metadata)] = rec.calls
    assert name == ("fastvoice", "realtime", "session", "error")
    assert (
        set(measurements) == {"monotonic_time"}
        and t0 <= measurements["monotonic_time"] <= time.monotonic_ns()
    )
    assert metadata == {
        "session_id": session.session_id,
        "kind": "ConnectionClosedError",
        "reason": "connection closed with code 1006",
    }
    assert KEY not in repr(rec.calls)


async def test_session_error_telemetry_for_a_server_error_event(server: FakeRealtimeServer) -> None:
    rec = Recorder()
    telemetry.attach("mutants-error", telemetry.REALTIME_SESSION_ERROR, rec)
    session = await rt.start_session(AGENT, api_key=KEY, url=server.url)
    await server.send(
        {"type": "error", "error": {"type": "invalid_request_error", "code": "scripted", "message": "nope"}}
    )
    await asyncio.wait_for(rec.arrived.wait(), 5)
    await session.stop()
    [(name, measurements, metadata)] = rec.calls
    assert name == telemetry.REALTIME_SESSION_ERROR and isinstance(measurements["monotonic_time"], int)
    assert metadata == {"session_id": session.session_id, "kind": "server", "code": "scripted"}
