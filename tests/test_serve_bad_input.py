"""`fastvoice serve` against malformed client frames: each gets one clear ``error`` event (a valid GA
``RealtimeServerEvent``), never a traceback in the log, and the session stays usable afterwards.
Out-of-range ``session.update`` values are refused at update time and leave the session unchanged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from fastvoice.serve import RealtimeServer
from fastvoice.testing import validate_server_event


class Peer:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event: dict[str, Any] = json.loads(msg.data)
        validate_server_event(event)  # strict: unknown fields rejected too
        return event

    async def error_for(self, frame: str | bytes) -> dict[str, Any]:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)
        event = await self.recv()
        assert event["type"] == "error", event
        error: dict[str, Any] = event["error"]
        assert error["type"] == "invalid_request_error", error
        assert len(error["message"]) < 1000, len(error["message"])
        return error

    async def update(self, session: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "session.update", "session": {"type": "realtime", **session}}
        if event_id is not None:
            event["event_id"] = event_id
        await self.ws.send_str(json.dumps(event))
        return await self.recv()

    async def assert_usable(self) -> None:
        updated = await self.update({"instructions": "still here"})
        assert updated["type"] == "session.updated" and updated["session"]["instructions"] == "still here"


@pytest.fixture
async def peer(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Peer]:
    caplog.set_level(logging.DEBUG, logger="fastvoice.serve")
    async with RealtimeServer(warm=False) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.url) as ws:
            p = Peer(ws)
            assert (await p.recv())["type"] == "session.created"
            yield p
        assert not server.errors, server.errors  # nothing reached the server's "our bug" path


def assert_quiet_log(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


DEEP = [
    "[" * 100000,
    "{" * 100000,
    '{"a":' * 50000,
    "[" * 100000 + "]" * 100000,  # well-formed, but deeper than Python's parser can recurse
]


@pytest.mark.parametrize("frame", DEEP, ids=["open-brackets", "open-braces", "open-members", "balanced"])
async def test_deeply_nested_json_is_invalid_json_without_tracebacks(
    peer: Peer, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    for _ in range(5):  # a client repeating the frame gets the same answer, the log stays quiet
        error = await peer.error_for(frame)
        assert error["code"] == "invalid_json"
    assert_quiet_log(caplog)
    await peer.assert_usable()


async def test_nesting_the_parser_accepts_but_later_copies_would_not(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    """600 levels parse, but would overflow the deep copies made of a session; refused as invalid_json."""
    deep: Any = {}
    for _ in range(600):
        deep = {"properties": deep}
    tool = {"type": "function", "name": "f", "parameters": deep}
    error = await peer.error_for(
        json.dumps({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    )
    assert error["code"] == "invalid_json" and "deeper" in error["message"]
    # Reasonable nesting (a real JSON schema) is fine.
    shallow: Any = {"type": "object", "properties": {"q": {"type": "string"}}}
    updated = await peer.update({"tools": [{"type": "function", "name": "f", "parameters": shallow}]})
    assert updated["type"] == "session.updated"
    assert_quiet_log(caplog)


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("not json at all", "invalid_json", None),
        (
            '{"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": NaN}}}}',  # noqa: E501
            "invalid_json",
            None,
        ),
        ('{"type": "response.create", "x": Infinity}', "invalid_json", None),
        ("[1, 2]", "invalid_value", None),
        ('"session.update"', "invalid_value", None),
        ("42", "invalid_value", None),
        ("null", "invalid_value", None),
        ("{}", "missing_required_parameter", "type"),
        ('{"type": 7}', "missing_required_parameter", "type"),
        ('{"type": "session.explode"}', "invalid_value", "type"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": "!!!!"}', "invalid_value", "audio"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter", "audio"),
        ('{"type": "session.update", "session": "realtime"}', "invalid_value", "session"),
        (
            '{"type": "session.update", "session": {"type": "realtime", "voise": "x"}}',
            "unknown_parameter",
            "session.voise",
        ),
        (
            '{"type": "conversation.item.truncate", "item_id": "x", "content_index": "a", "audio_end_ms": 1}',
            "invalid_value",
            "content_index",
        ),
        ('{"type": "conversation.item.delete", "item_id": ["x"]}', "invalid_value", "item_id"),
        ('{"type": "response.cancel", "event_id": 12}', "invalid_value", "event_id"),
    ],
)
async def test_malformed_frames_get_clear_errors(
    peer: Peer, caplog: pytest.LogCaptureFixture, frame: str, code: str, param: str | None
) -> None:
    error = await peer.error_for(frame)
    assert error["code"] == code, error
    assert error.get("param") == param, error
    assert_quiet_log(caplog)
    await peer.assert_usable()


async def test_binary_frames_get_an_error(peer: Peer, caplog: pytest.LogCaptureFixture) -> None:
    for frame in (b"\x00" * 10, json.dumps({"type": "input_audio_buffer.clear"}).encode(), b"\xff" * 100000):
        error = await peer.error_for(frame)
        assert error["code"] == "invalid_value" and "Binary" in error["message"]
    assert_quiet_log(caplog)
    await peer.assert_usable()


async def test_huge_values_are_not_echoed_back(peer: Peer, caplog: pytest.LogCaptureFixture) -> None:
    big = "x" * 1_000_000
    error = await peer.error_for(json.dumps({"type": big}))
    assert error["code"] == "invalid_value" and error["param"] == "type"
    error = await peer.error_for(
        json.dumps({"type": "session.update", "session": {"type": "realtime", big: 1}})
    )
    assert error["code"] == "unknown_parameter" and len(error["param"]) < 300
    error = await peer.error_for(json.dumps({"type": "session.explode", "event_id": big}))
    assert "event_id" not in error  # the service's event ids are at most 512 characters
    error = await peer.error_for(json.dumps({"type": "session.explode", "event_id": "evt_mine"}))
    assert error["event_id"] == "evt_mine"
    assert_quiet_log(caplog)
    await peer.assert_usable()


async def test_frames_over_the_size_limit_or_not_utf8_close_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    """Protocol violations end the connection with the WebSocket close code for them, not a traceback."""
    caplog.set_level(logging.DEBUG, logger="fastvoice.serve")
    async with RealtimeServer(warm=False) as server:
        async with websockets.connect(server.url, max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(b"\xff\xfe not utf-8", text=True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        async with websockets.connect(server.url, max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(" " * (33 * 1024 * 1024))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert not server.errors
    assert_quiet_log(caplog)


# ---- session.update ranges
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"audio": {"output": {"speed": -1}}}, "session.audio.output.speed"),
        ({"audio": {"output": {"speed": 0.2}}}, "session.audio.output.speed"),
        ({"audio": {"output": {"speed": 1.6}}}, "session.audio.output.speed"),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}},
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": -1}}}},
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "prefix_padding_ms": -300}}}},
            "session.audio.input.turn_detection.prefix_padding_ms",
        ),
        ({"max_output_tokens": 0}, "session.max_output_tokens"),
        ({"max_output_tokens": 4097}, "session.max_output_tokens"),
        ({"audio": {"output": {"voice": "nova"}}}, "session.audio.output.voice"),  # a TTS voice, not realtime
        ({"audio": {"output": {"voice": "marin "}}}, "session.audio.output.voice"),
        ({"audio": {"output": {"voice": {"id": "voice_1234"}}}}, "session.audio.output.voice"),
    ],
)
async def test_out_of_range_update_is_refused_and_changes_nothing(
    peer: Peer, caplog: pytest.LogCaptureFixture, session: dict[str, Any], param: str
) -> None:
    before = (await peer.update({}))["session"]
    refused = await peer.update({**session, "instructions": "should not apply"}, event_id="evt_upd")
    assert refused["type"] == "error", refused
    error = refused["error"]
    assert error["code"] == "invalid_value" and error["param"] == param and error["event_id"] == "evt_upd"
    after = (await peer.update({}))["session"]
    assert after == before  # neither the bad value nor the rest of that update was applied
    assert_quiet_log(caplog)


async def test_in_range_speed_is_accepted_and_used(peer: Peer) -> None:
    for speed in (0.25, 1.5, 1):
        updated = await peer.update({"audio": {"output": {"speed": speed}}})
        assert updated["session"]["audio"]["output"]["speed"] == speed


async def test_every_realtime_voice_is_accepted(peer: Peer) -> None:
    from fastvoice.realtime.config import VOICES

    for voice in VOICES:
        updated = await peer.update({"audio": {"output": {"voice": voice}}})
        assert updated["session"]["audio"]["output"]["voice"] == voice


async def test_response_create_max_output_tokens_is_checked(peer: Peer) -> None:
    error = await peer.error_for(
        json.dumps({"type": "response.create", "response": {"max_output_tokens": 0}})
    )
    assert error["code"] == "invalid_value" and error["param"] == "response.max_output_tokens"
    await peer.assert_usable()
