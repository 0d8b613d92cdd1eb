"""The native WebSocket transport against real peers on 127.0.0.1.

Well-behaved peers are `websockets` servers; misbehaving ones (fragmentation, bad UTF-8, resets,
silent or refusing upgrades, dead peers) are raw asyncio TCP servers that speak just enough
RFC 6455 by hand, so the client is checked against bytes we control.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import socket
import struct
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import fastvoice
import numpy as np
import pytest
from fastvoice import _fastvoice, transport
from fastvoice.transport import (
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageTooBig,
    ProtocolError,
)
from websockets.asyncio.server import ServerConnection, serve

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def _echo(ws: ServerConnection) -> None:
    async for msg in ws:
        await ws.send(msg)


class Peer:
    """A `websockets` server running `handler`; `url` points at it."""

    def __init__(self, handler: Callable[[ServerConnection], Awaitable[None]], **kw: Any) -> None:
        self.handler = handler
        self.kw = {"compression": None, "max_size": None, **kw}

    async def __aenter__(self) -> Peer:
        self.server = await serve(self.handler, "127.0.0.1", 0, **self.kw).__aenter__()
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server-to-client (unmasked) frame."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, n])
    elif n < 65536:
        head = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 127]) + n.to_bytes(8, "big")
    return head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one masked client frame: (opcode, unmasked payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    assert b1 & 0x80, "client frames must be masked"
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


Scenario = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawPeer:
    """A TCP server that answers the upgrade by hand (unless `upgrade=False`) then runs `scenario`."""

    def __init__(self, scenario: Scenario, upgrade: bool = True) -> None:
        self.scenario = scenario
        self.upgrade = upgrade
        self.requests: list[bytes] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.upgrade:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
            await self.scenario(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawPeer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


@pytest.mark.parametrize("size", [0, 1, 6400, 4 * 2**20])
async def test_echo_text_and_binary(size: int) -> None:
    rng = np.random.default_rng(size)
    text = "".join(chr(c) for c in rng.integers(0x20, 0x7E, size))
    if size > 10:
        text = text[:-4] + "é€😀"[: max(0, 4)]  # multi-byte UTF-8 as well
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    async with Peer(_echo) as peer, transport.connect(peer.url) as conn:
        await conn.send_text(text)
        await conn.send_bytes(data)
        got_text = await conn.recv()
        got_data = await conn.recv()
    assert isinstance(got_text, str) and got_text == text
    assert isinstance(got_data, bytes) and got_data == data


async def test_send_bytes_accepts_bytes_like_objects() -> None:
    data = bytes(range(256)) * 3
    async with Peer(_echo) as peer, transport.connect(peer.url) as conn:
        for obj in (data, bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
            await conn.send_bytes(obj)  # type: ignore[arg-type]
            assert await conn.recv() == data
        with pytest.raises(TypeError):
            await conn.send_bytes("text is not bytes")  # type: ignore[arg-type]


async def test_recv_batch_returns_everything_buffered_and_async_for_ends_cleanly() -> None:
    async def burst(ws: ServerConnection) -> None:
        for i in range(100):
            await ws.send(f"m{i}")
        await ws.close(1000, "done")

    async with Peer(burst) as peer:
        conn = await transport.connect(peer.url)
        await asyncio.sleep(0.2)  # let the whole burst arrive
        batch = await conn.recv_batch(1000)
        assert batch == [f"m{i}" for i in range(100)]
        rest = [m async for m in conn]
        assert rest == []
        assert conn.closed and conn.close_code == 1000 and conn.close_reason == "done"


async def test_fragmented_frames_are_reassembled() -> None:
    async def fragments(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, "héllo ".encode()[:2], fin=False))
        writer.write(frame(0x9, b"ping-in-between"))  # control frames may interleave
        writer.write(frame(0x0, "héllo ".encode()[2:], fin=False))
        writer.write(frame(0x0, b"world", fin=True))
        writer.write(frame(0x2, b"\x00\x01", fin=False) + frame(0x0, b"\x02", fin=True))
        await writer.drain()
        op, payload = await read_frame(reader)  # the automatic pong
        assert (op, payload) == (0xA, b"ping-in-between")
        writer.write(frame(0x1, b"pong-ok"))
        await writer.drain()
        op, payload = await read_frame(reader)  # the client's close: echo it
        assert op == 0x8 and payload[:2] == (1000).to_bytes(2, "big")
        writer.write(frame(0x8, payload))
        await writer.drain()

    async with RawPeer(fragments) as peer:
        conn = await transport.connect(peer.url)
        assert await conn.recv() == "héllo world"
        assert await conn.recv() == b"\x00\x01\x02"
        assert await conn.recv() == "pong-ok"
        await conn.close()


async def test_invalid_utf8_is_a_protocol_error() -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"fine") + frame(0x1, b"\xff\xfe bad"))
        await writer.drain()
        await reader.read()

    async with RawPeer(bad) as peer:
        conn = await transport.connect(peer.url)
        assert await conn.recv() == "fine"
        with pytest.raises(ProtocolError) as info:
            await conn.recv()
        assert "UTF-8" in str(info.value)
        assert conn.close_code == 1007
        with pytest.raises(ConnectionClosedError):
            await conn.recv()


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        (1000, ConnectionClosedOK),
        (1001, ConnectionClosedOK),
        (1011, ConnectionClosedError),
        (4000, ConnectionClosedError),
    ],
)
async def test_server_close_codes(code: int, exc: type[ConnectionClosed]) -> None:
    async def closer(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(code, f"reason {code}")

    async with Peer(closer) as peer:
        conn = await transport.connect(peer.url)
        assert await conn.recv() == "last words"
        with pytest.raises(exc) as info:
            await conn.recv()
        assert (info.value.code, info.value.reason) == (code, f"reason {code}")
        assert (conn.close_code, conn.close_reason, conn.closed) == (code, f"reason {code}", True)
        with pytest.raises(exc):
            await conn.send_text("too late")


async def test_tcp_reset_is_closed_1006() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(0x1, b"before reset"))
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with RawPeer(reset) as peer:
        conn = await transport.connect(peer.url)
        assert await conn.recv() == "before reset"
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
        assert info.value.code == 1006
        assert conn.close_code == 1006


async def test_silent_upgrade_times_out_with_connect_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with RawPeer(silent, upgrade=False) as peer:
        t0 = time.monotonic()
        with pytest.raises(ConnectError) as info:
            await transport.connect(peer.url, open_timeout=0.3)
        elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 1.5
    assert "timed out" in str(info.value) and info.value.status is None


SECRETS = ("sk-test-SUPERSECRET-123", "azure-key-SECRET-456", "query-SECRET-789")


async def test_401_is_connect_error_with_status_and_no_secret_leaks(caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"error": "invalid api key"}'
    seen: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    caplog.set_level("DEBUG")
    async with RawPeer(refuse, upgrade=False) as peer:
        url = f"{peer.url}v1/realtime?model=gpt-realtime&api-key={SECRETS[2]}"
        connecting = transport.connect(
            url, headers={"Authorization": f"Bearer {SECRETS[0]}", "api-key": SECRETS[1]}
        )
        with pytest.raises(ConnectError) as info:
            await connecting
    err = info.value
    assert err.status == 401 and err.body == body
    assert "401" in str(err)
    # Headers and query were sent exactly as given...
    request = seen[0].decode()
    assert f"GET /v1/realtime?model=gpt-realtime&api-key={SECRETS[2]} HTTP/1.1" in request
    assert f"\r\nauthorization: Bearer {SECRETS[0]}\r\n" in request  # names go lower-case on the wire
    assert f"\r\napi-key: {SECRETS[1]}\r\n" in request
    # ...and appear nowhere else.
    texts = [str(err), repr(err), repr(err.args), repr(connecting), caplog.text]
    texts.append("".join(traceback.format_exception(err)))
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_connection_repr_hides_query_and_headers() -> None:
    async with Peer(_echo) as peer:
        conn = await transport.connect(
            f"{peer.url}?api-key={SECRETS[2]}", headers=[("Authorization", f"Bearer {SECRETS[0]}")]
        )
        text = repr(conn) + str(conn)
        await conn.close()
    assert "Connection" in text
    for secret in SECRETS:
        assert secret not in text


async def test_invalid_header_value_error_does_not_echo_it() -> None:
    with pytest.raises(ValueError) as info:
        await transport.connect("ws://127.0.0.1:9/", headers={"Authorization": f"Bearer {SECRETS[0]}\n"})
    assert SECRETS[0] not in str(info.value) and "authorization" in str(info.value).lower()


async def test_insecure_ws_refused_for_remote_hosts() -> None:
    with pytest.raises(ValueError, match="allow_insecure_ws"):
        await transport.connect("ws://example.com/")
    with pytest.raises(ValueError, match="ws:// or wss://"):
        await transport.connect("http://127.0.0.1/")
    # Allowed explicitly: it then fails on the network (no route here), not on the check.
    with pytest.raises(ConnectError):
        await transport.connect("ws://192.0.2.1:9/", allow_insecure_ws=True, open_timeout=0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"open_timeout": 0},
        {"open_timeout": float("nan")},
        {"ping_interval": 1e300},
        {"ping_timeout": -1},
        {"close_timeout": float("inf")},
        {"max_message_size": 0},
        {"max_queue": 0},
    ],
)
async def test_bad_arguments_are_value_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        await transport.connect("ws://127.0.0.1:9/", **kwargs)  # type: ignore[arg-type]


async def test_refused_tcp_is_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError, match="cannot connect"):
        await transport.connect(f"ws://127.0.0.1:{port}/")


async def test_message_too_big_both_directions() -> None:
    async def big(ws: ServerConnection) -> None:
        await ws.send("x" * 500)
        await ws.send("y" * 2000)
        await asyncio.sleep(0.2)

    async with Peer(big) as peer:
        conn = await transport.connect(peer.url, max_message_size=1000)
        with pytest.raises(MessageTooBig):
            await conn.send_text("z" * 1001)  # refused locally, connection stays usable
        assert await conn.recv() == "x" * 500
        with pytest.raises(MessageTooBig) as info:
            await conn.recv()
        assert "2000" in str(info.value)
        assert conn.close_code == 1009
        with pytest.raises(ConnectionClosedError):
            await conn.recv()


async def test_dead_peer_detected_by_keepalive() -> None:
    async def dead(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # never reads, never answers pings

    async with RawPeer(dead) as peer:
        conn = await transport.connect(peer.url, ping_interval=0.2, ping_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
        elapsed = time.monotonic() - t0
    assert info.value.code == 1006
    assert elapsed < 0.2 + 0.3 + 0.4


async def test_keepalive_keeps_live_peer() -> None:
    async with Peer(_echo) as peer:
        conn = await transport.connect(peer.url, ping_interval=0.05, ping_timeout=0.2)
        await asyncio.sleep(0.5)
        await conn.send_text("still here")
        assert await conn.recv() == "still here"
        await conn.close()


async def test_recv_cancellation_loses_nothing() -> None:
    async with Peer(_echo) as peer:
        conn = await transport.connect(peer.url)
        for _ in range(5):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(conn.recv(), 0.02)
        task = asyncio.create_task(conn.recv())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for i in range(50):
            await conn.send_text(f"n{i}")
        got = [await conn.recv() for _ in range(50)]
        assert got == [f"n{i}" for i in range(50)]
        await conn.close()


async def test_use_after_close_raises() -> None:
    async with Peer(_echo) as peer:
        conn = await transport.connect(peer.url)
        await conn.close(1000, "bye")
        assert conn.closed and conn.close_code == 1000
        with pytest.raises(ConnectionClosedOK):
            await conn.send_text("x")
        with pytest.raises(ConnectionClosedOK):
            await conn.send_bytes(b"x")
        with pytest.raises(ConnectionClosedOK):
            await conn.recv()
        await conn.close()  # idempotent
        with pytest.raises(ValueError):
            await conn.close(1005)


async def test_200_concurrent_connections() -> None:
    async with Peer(_echo) as peer:
        conns = await asyncio.gather(*(transport.connect(peer.url) for _ in range(200)))

        async def roundtrip(i: int, conn: transport.Connection) -> Any:
            await conn.send_text(f"conn {i}")
            return await conn.recv()

        got = await asyncio.gather(*(roundtrip(i, c) for i, c in enumerate(conns)))
        assert got == [f"conn {i}" for i in range(200)]
        await asyncio.gather(*(c.close() for c in conns))
        assert all(c.close_code == 1000 for c in conns)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def test_slow_consumer_keeps_memory_bounded() -> None:
    chunk, total = 64 * 1024, 50 * 2**20
    count = total // chunk
    sent = [0]

    async def flood(ws: ServerConnection) -> None:
        for i in range(count):
            await ws.send(bytes([i % 256]) * chunk)
            sent[0] += chunk
        await ws.close()

    async with Peer(flood, write_limit=2**16) as peer:
        gc.collect()
        conn = await transport.connect(peer.url, max_queue_bytes=2**20)
        rss0 = _rss_bytes()
        await asyncio.sleep(1.0)  # the client reads nothing meanwhile
        grown = _rss_bytes() - rss0
        stalled_at = sent[0]
        assert stalled_at < total // 2, "the reader did not stop: no TCP backpressure"
        assert grown < 16 * 2**20
        received = 0
        async for batch_msg in conn:
            assert isinstance(batch_msg, bytes) and len(batch_msg) == chunk
            assert batch_msg[0] == batch_msg[-1] == (received // chunk) % 256
            received += chunk
        assert received == total


async def test_send_queue_is_bounded_and_send_waits() -> None:
    release = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        n = 0
        while n < 300:
            op, _ = await read_frame(reader)
            n += op == 0x2
        writer.write(frame(0x1, b"got all"))
        await writer.drain()

    async with RawPeer(stalled) as peer:
        conn = await transport.connect(peer.url, max_queue=8, max_queue_bytes=2**20)
        payload = b"p" * 65536
        sent = 0

        async def pump() -> None:
            nonlocal sent
            for _ in range(300):
                await conn.send_bytes(payload)
                sent += 1

        task = asyncio.create_task(pump())
        await asyncio.sleep(0.3)
        assert not task.done() and sent < 300  # blocked on the full queue (socket buffers full too)
        release.set()
        await asyncio.wait_for(task, 10)
        assert await conn.recv() == "got all"


@pytest.mark.parametrize("pcm_kind", ["bytes", "int16", "int16-odd", "empty"])
async def test_send_audio_frames_match_json_and_base64(pcm_kind: str) -> None:
    rng = np.random.default_rng(7)
    n = {"bytes": 4800, "int16": 2400, "int16-odd": 2401, "empty": 0}[pcm_kind]
    pcm = rng.integers(-32768, 32767, n, dtype=np.int16)
    arg: Any = pcm.tobytes() if pcm_kind == "bytes" else pcm
    async with Peer(_echo) as peer, transport.connect(peer.url) as conn:
        await conn.send_audio(arg)
        got = await conn.recv()
    want = json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm.tobytes()).decode()},
        separators=(",", ":"),
    )
    assert got == want


async def test_send_audio_floats_use_the_pcm16_rule_and_bad_input_raises() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, np.nan, 1e-6], dtype=np.float32)
    ref = np.nan_to_num(np.clip(np.round(x.astype(np.float64) * 32768), -32768, 32767)).astype(np.int16)
    want = json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(ref.tobytes()).decode()},
        separators=(",", ":"),
    )
    async with Peer(_echo) as peer, transport.connect(peer.url) as conn:
        await conn.send_audio(x)
        assert await conn.recv() == want
        await conn.send_audio(x.astype(np.float64))
        assert await conn.recv() == want
        with pytest.raises(fastvoice.AudioFormatError):
            await conn.send_audio(b"\x00\x01\x02")
        with pytest.raises(TypeError):
            await conn.send_audio("not audio")
        await conn.send_text("still usable")
        assert await conn.recv() == "still usable"


async def test_decode_audio_turns_deltas_into_audio_delta_objects() -> None:
    pcm = np.arange(-1200, 1200, dtype=np.int16).tobytes()
    delta = {
        "type": "response.output_audio.delta",
        "event_id": "ev1",
        "response_id": "resp1",
        "item_id": "item1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    other = json.dumps({"type": "response.done", "response": {"id": "resp1"}})
    broken = '{"type":"response.output_audio.delta","delta":"!!not base64"}'

    async def server(ws: ServerConnection) -> None:
        await ws.send(json.dumps(delta))
        await ws.send(other)
        await ws.send(broken)
        await ws.wait_closed()

    async with Peer(server) as peer, transport.connect(peer.url, decode_audio=True) as conn:
        got = [await conn.recv() for _ in range(3)]
    assert isinstance(got[0], fastvoice.audio.AudioDelta)
    assert got[0].pcm == pcm and got[0].item_id == "item1" and got[0].response_id == "resp1"
    assert got[1] == other
    assert got[2] == broken  # a malformed delta arrives untouched, as text


def test_runtime_survives_repeated_asyncio_run_and_threads() -> None:
    async def one(tag: str) -> list[Any]:
        async with Peer(_echo) as peer, transport.connect(peer.url) as conn:
            out = []
            for i in range(20):
                await conn.send_text(f"{tag}{i}")
                out.append(await conn.recv())
            return out

    for run in range(3):
        assert asyncio.run(one(f"r{run}-")) == [f"r{run}-{i}" for i in range(20)]
    results: dict[int, list[Any]] = {}

    def in_thread(k: int) -> None:
        results[k] = asyncio.run(one(f"t{k}-"))

    threads = [threading.Thread(target=in_thread, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {k: [f"t{k}-{i}" for i in range(20)] for k in range(3)}


def test_runtime_shutdown_closes_connections_and_restarts() -> None:
    async def main() -> None:
        codes: list[int] = []

        async def watch(ws: ServerConnection) -> None:
            await ws.wait_closed()
            codes.append(ws.close_code or 0)

        async with Peer(watch) as peer:
            conn = await transport.connect(peer.url)
            assert _fastvoice.transport_runtime_running()
            await asyncio.to_thread(_fastvoice.transport_shutdown, 2.0)
            assert not _fastvoice.transport_runtime_running()
            with pytest.raises(ConnectionClosed):
                await conn.recv()
            await asyncio.sleep(0.1)
            assert codes == [1001]
            # A new connect brings up a fresh runtime.
            async with Peer(_echo) as peer2, transport.connect(peer2.url) as conn2:
                await conn2.send_text("again")
                assert await conn2.recv() == "again"

    asyncio.run(main())


@pytest.mark.parametrize("wake", ["eventfd", "socketpair", "call_soon"])
def test_every_wake_channel_delivers_interleaved_traffic_in_order(
    wake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop wake-up (eventfd by default; socketpair and call_soon kept for A/B runs) under
    pipelined sends and receives on several connections of one loop at once."""
    if wake != "eventfd":
        monkeypatch.setenv("FASTVOICE_TRANSPORT_WAKE", wake)
    n = 400

    async def main() -> None:
        async with Peer(_echo) as peer:
            conns = [await transport.connect(peer.url) for _ in range(3)]
            from fastvoice.transport._loop import loop_waker

            fd = loop_waker().native.fileno()
            if wake == "call_soon":
                assert fd is None
            else:
                kind = os.readlink(f"/proc/self/fd/{fd}")
                assert kind == "anon_inode:[eventfd]" if wake == "eventfd" else kind.startswith("socket:")

            async def pump(k: int, conn: transport.Connection) -> list[Any]:
                async def send() -> None:
                    for i in range(n):
                        await conn.send_text(f"{k}:{i}")

                async def recv() -> list[Any]:
                    return [await conn.recv() for _ in range(n)]

                _, got = await asyncio.gather(send(), recv())
                return got

            got = await asyncio.gather(*(pump(k, c) for k, c in enumerate(conns)))
            assert got == [[f"{k}:{i}" for i in range(n)] for k in range(3)]
            # Isolated round trips (each receive waits for a wake-up) after the burst.
            for i in range(50):
                await conns[i % 3].send_text(f"rt{i}")
                assert await conns[i % 3].recv() == f"rt{i}"
            for c in conns:
                await c.close()

    asyncio.run(main())
