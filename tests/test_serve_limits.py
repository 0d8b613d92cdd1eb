"""`fastvoice serve` resource limits: the handshake deadline, the idle timeout and the session cap.

The server runs in this process, so its open file descriptors are counted from ``/proc/self/fd``; the
clients are raw TCP sockets (for connections that never finish an upgrade) and aiohttp WebSockets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Any

import aiohttp
import pytest
from fastvoice.serve import RealtimeServer
from fastvoice.testing import validate_server_event


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


def peer_closed(sock: socket.socket) -> bool:
    """True once the server closed its end (EOF or reset); the socket is non-blocking."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def test_connections_that_never_upgrade_are_closed_after_the_handshake_timeout() -> None:
    """150 sockets that send nothing and 30 that send half a request: the server holds ~180 descriptors
    (one per connection) until the deadline, then is back to its baseline."""
    async with RealtimeServer(warm=False, handshake_timeout=1.0) as server:
        await asyncio.sleep(0.2)
        baseline = open_fds()
        loop = asyncio.get_running_loop()

        async def dial() -> socket.socket:
            # Non-blocking connects: the server's accept loop runs in this same event loop.
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", server.port))
            return s

        idle = [await dial() for _ in range(150)]
        half = [await dial() for _ in range(30)]
        part = b"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        for i, s in enumerate(half):
            await loop.sock_sendall(s, part[: 20 + i])  # cut mid-headers: never a complete request
        clients = len(idle) + len(half)
        # Each client socket and the server's end of it are both open in this process.
        assert await wait_for(lambda: open_fds() >= baseline + 2 * clients, 5)
        held = open_fds() - baseline - clients
        print(f"fds: baseline {baseline}, server side held {held} for {clients} connections")
        assert held >= clients
        assert await wait_for(lambda: all(peer_closed(s) for s in idle + half), 10), "not closed"
        for s in idle + half:
            s.close()
        assert await wait_for(lambda: open_fds() <= baseline + 2, 5)
        print(f"fds after the timeout: {open_fds()} (baseline {baseline})")
        # The server still serves: a real client upgrades and gets its session.
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
            msg = await ws.receive(timeout=10)
            assert json.loads(msg.data)["type"] == "session.created"


async def test_a_slow_handshake_within_the_deadline_still_succeeds() -> None:
    """Bytes trickling in are fine as long as the upgrade completes in time; a live session outlives it."""
    async with RealtimeServer(warm=False, handshake_timeout=1.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
        for i in range(0, len(request), 40):
            writer.write(request[i : i + 40])
            await asyncio.sleep(0.05)
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 101"), status
        await asyncio.sleep(2.0)  # past the handshake deadline: the session stays open
        assert len(server.sessions) == 1
        writer.close()


async def _recv_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    event: dict[str, Any] = json.loads(msg.data)
    validate_server_event(event)
    return event


async def test_idle_session_gets_an_error_event_then_is_closed() -> None:
    async with RealtimeServer(warm=False, idle_timeout=1.0) as server, aiohttp.ClientSession() as http:
        # autoping off and no heartbeat: the client sends nothing at all after the upgrade.
        ws = await http.ws_connect(server.url, autoping=False)
        assert (await _recv_event(ws))["type"] == "session.created"
        t0 = time.monotonic()
        event = await _recv_event(ws, timeout=10)
        waited = time.monotonic() - t0
        assert event["type"] == "error"
        assert event["error"]["code"] == "idle_timeout" and event["error"]["type"] == "invalid_request_error"
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
        assert waited >= 0.9  # not before the timeout
        print(f"idle session closed after {waited:.2f} s (idle_timeout 1.0)")
        assert await wait_for(lambda: not server.sessions, 5)


async def test_pings_alone_do_not_keep_a_session_open() -> None:
    """A client whose library pings every 0.2 s but sends no event is idle all the same."""
    async with RealtimeServer(warm=False, idle_timeout=1.0) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.url, heartbeat=0.2) as ws:
            assert (await _recv_event(ws))["type"] == "session.created"
            event = await _recv_event(ws, timeout=10)
            assert event["type"] == "error" and event["error"]["code"] == "idle_timeout"
        assert await wait_for(lambda: not server.sessions, 5)


async def test_client_events_and_a_playing_response_keep_a_session_alive() -> None:
    async with (
        RealtimeServer(warm=False, idle_timeout=1.0, pace=1.0) as server,
        aiohttp.ClientSession() as http,
        http.ws_connect(server.url) as ws,
    ):
        assert (await _recv_event(ws))["type"] == "session.created"
        for _ in range(4):  # 2 s of activity, one event every 0.5 s
            await ws.send_str(json.dumps({"type": "input_audio_buffer.clear"}))
            assert (await _recv_event(ws))["type"] == "input_audio_buffer.cleared"
            await asyncio.sleep(0.5)
        # A reply that plays for longer than the idle timeout: the session is not idle while it plays.
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Please tell me a rather long story today."}],
        }
        await ws.send_str(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send_str(json.dumps({"type": "response.create"}))
        kinds = []
        while True:
            event = await _recv_event(ws, timeout=20)
            kinds.append(event["type"])
            if event["type"] == "response.done":
                break
        assert "error" not in kinds and "response.output_audio.delta" in kinds
        assert event["response"]["status"] == "completed"


async def test_sessions_over_the_cap_get_503_until_one_closes() -> None:
    async with RealtimeServer(warm=False, max_sessions=3) as server, aiohttp.ClientSession() as http:
        open_ws = []
        for _ in range(3):
            ws = await http.ws_connect(server.url)
            assert (await _recv_event(ws))["type"] == "session.created"
            open_ws.append(ws)
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(server.url)
        assert info.value.status == 503
        # The body says why, in OpenAI's shape.
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": key,
        }
        async with http.get(f"http://127.0.0.1:{server.port}/v1/realtime", headers=headers) as resp:
            assert resp.status == 503 and resp.headers.get("Retry-After") == "1"
            body = await resp.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == "too_many_sessions" and "3" in body["error"]["message"]
        assert len(server.sessions) == 3
        await open_ws.pop().close()
        assert await wait_for(lambda: len(server.sessions) == 2, 5)
        ws = await http.ws_connect(server.url)
        assert (await _recv_event(ws))["type"] == "session.created"
        open_ws.append(ws)
        for ws in open_ws:
            await ws.close()


def test_limits_are_validated() -> None:
    for kwargs in ({"max_sessions": 0}, {"handshake_timeout": 0}, {"idle_timeout": -1.0}):
        with pytest.raises(ValueError):
            RealtimeServer(**kwargs)  # type: ignore[arg-type]
