"""WebSocket client benchmarks: fastvoice.transport next to websockets, aiohttp and picows.

All clients talk to the same loopback echo server (picows, the fastest Python-side server we have),
run in a separate process so that `time.process_time()` of this process is the client's CPU only
(it counts every thread, so fastvoice's tokio worker is included). Every run asserts that each echo
came back intact, so a benchmark cannot rot into measuring nothing.

Smoke mode (the normal test run): tiny counts. Full mode, whose figures go to
docs/bench-notes/transport.md:
    FASTVOICE_BENCH_FULL=1 .venv/bin/python benches/bench_transport.py
(optional: REPEATS=3, ONLY=rtt,pipe,rtt-tls,pipe-tls,audio, KINDS=fastvoice,picows,...)
or through pytest-benchmark (figures in extra_info):
    FASTVOICE_BENCH_FULL=1 .venv/bin/python -m pytest benches/bench_transport.py --benchmark-enable \
        --benchmark-only --benchmark-columns=median,iqr,ops -p no:randomly
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest

FULL = os.environ.get("FASTVOICE_BENCH_FULL") == "1"
N_RTT = 5000 if FULL else 40
N_PIPE = 20000 if FULL else 200
N_STREAMS = 100 if FULL else 10
STREAM_SECONDS = 10.0 if FULL else 0.3
_HEAD = '{"type":"conversation.item.create","text":"'
PAYLOAD = _HEAD + "x" * (6400 - len(_HEAD) - 2) + '"}'
assert len(PAYLOAD) == 6400

SERVER = r"""
import asyncio, ssl, sys
from picows import WSListener, WSMsgType, ws_create_server

class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

class TcpEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
    def data_received(self, data):
        self.t.write(data)

async def main():
    ws = await ws_create_server(lambda _: Echo(), "127.0.0.1", 0, max_frame_size=64 * 2**20)
    tcp = await asyncio.get_running_loop().create_server(TcpEcho, "127.0.0.1", 0)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1])
    wss = await ws_create_server(lambda _: Echo(), "127.0.0.1", 0, max_frame_size=64 * 2**20, ssl=ctx)
    ports = [srv.sockets[0].getsockname()[1] for srv in (ws, tcp, wss)]
    print(*ports, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@dataclasses.dataclass
class Servers:
    url: str  # ws:// echo
    tls_url: str  # wss:// echo (certificate for "localhost" from a CA made at run time)
    tcp_port: int  # raw TCP echo
    ca_file: str


@contextlib.contextmanager
def echo_server() -> Iterator[Servers]:
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        ca_file, cert_file = os.path.join(tmp, "ca.pem"), os.path.join(tmp, "server.pem")
        ca.cert_pem.write_to_path(ca_file)
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(cert_file)
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, cert_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ws_port, tcp_port, wss_port = map(int, proc.stdout.readline().split())
            yield Servers(f"ws://127.0.0.1:{ws_port}/", f"wss://localhost:{wss_port}/", tcp_port, ca_file)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


#: Set by the runner when the benchmark uses TLS: the test CA every client must trust.
CA_FILE: str | None = None


def _ssl_context() -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=CA_FILE) if CA_FILE else None


class Client:
    """A uniform face over each library: send/recv text, close."""

    send: Callable[[str], Awaitable[None]]
    recv: Callable[[], Awaitable[str]]
    close: Callable[[], Awaitable[None]]
    # Audio: how the library's user sends 20 ms of PCM16 as an append event.
    send_audio: Callable[[bytes], Awaitable[None]]


def _json_append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


async def open_fastvoice(url: str) -> Client:
    from fastvoice import transport

    conn = await transport.connect(
        url, max_message_size=64 * 2**20, ca_file=CA_FILE if url.startswith("wss") else None
    )
    c = Client()
    c.send, c.recv, c.close, c.send_audio = conn.send_text, conn.recv, conn.close, conn.send_audio  # type: ignore[assignment]
    return c


async def open_websockets(url: str) -> Client:
    from websockets.asyncio.client import connect

    ws = await connect(
        url, compression=None, max_size=None, ssl=_ssl_context() if url.startswith("wss") else None
    )
    c = Client()
    c.send, c.recv, c.close = ws.send, ws.recv, ws.close  # type: ignore[assignment]

    async def send_audio(pcm: bytes) -> None:
        await ws.send(_json_append(pcm))

    c.send_audio = send_audio
    return c


async def open_aiohttp(url: str) -> Client:
    import aiohttp

    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url, max_msg_size=0, autoping=True, ssl=_ssl_context() or True)
    c = Client()
    c.send, c.recv = ws.send_str, ws.receive_str

    async def close() -> None:
        await ws.close()
        await session.close()

    async def send_audio(pcm: bytes) -> None:
        await ws.send_str(_json_append(pcm))

    c.close, c.send_audio = close, send_audio
    return c


async def open_picows(url: str) -> Client:
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.q: collections.deque[str] = collections.deque()
            self.waiter: asyncio.Future[None] | None = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.q.append(frame.get_payload_as_utf8_text())
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)

    transport, listener = await ws_connect(
        Listener,
        url,
        max_frame_size=64 * 2**20,
        ssl_context=_ssl_context() if url.startswith("wss") else None,
    )
    c = Client()

    async def send(text: str) -> None:
        transport.send(WSMsgType.TEXT, text.encode())

    async def recv() -> str:
        while not listener.q:
            listener.waiter = loop.create_future()
            await listener.waiter
        return listener.q.popleft()

    async def close() -> None:
        transport.send_close()
        transport.disconnect()

    async def send_audio(pcm: bytes) -> None:
        transport.send(WSMsgType.TEXT, _json_append(pcm).encode())

    c.send, c.recv, c.close, c.send_audio = send, recv, close, send_audio
    return c


async def open_fastvoice_callsoon(url: str) -> Client:
    """fastvoice with the alternative bridge: the tokio thread takes the GIL and calls
    loop.call_soon_threadsafe (the pyo3-async-runtimes cost model) instead of writing to an fd."""
    os.environ["FASTVOICE_TRANSPORT_WAKE"] = "call_soon"
    try:
        return await open_fastvoice(url)
    finally:
        del os.environ["FASTVOICE_TRANSPORT_WAKE"]


async def open_fastvoice_socketpair(url: str) -> Client:
    """fastvoice waking its loop through a socketpair (the design before the eventfd), for A/B."""
    os.environ["FASTVOICE_TRANSPORT_WAKE"] = "socketpair"
    try:
        return await open_fastvoice(url)
    finally:
        del os.environ["FASTVOICE_TRANSPORT_WAKE"]


CLIENTS: dict[str, Callable[[str], Awaitable[Client]]] = {
    "fastvoice": open_fastvoice,
    "fastvoice-socketpair": open_fastvoice_socketpair,
    "fastvoice-callsoon": open_fastvoice_callsoon,
    "picows": open_picows,
    "websockets": open_websockets,
    "aiohttp": open_aiohttp,
}


@contextlib.asynccontextmanager
async def client(kind: str, url: str) -> AsyncIterator[Client]:
    c = await CLIENTS[kind](url)
    try:
        yield c
    finally:
        await c.close()


def _rtt_figures(cpu: float, wall: float, lat: np.ndarray[Any, Any]) -> dict[str, float]:
    """Per-round-trip CPU and wall time and latency percentiles (µs) from totals over ``lat.size`` trips."""
    n = lat.size
    return {
        "cpu_us_per_rtt": cpu / n * 1e6,
        "wall_us_per_rtt": wall / n * 1e6,
        "p50_us": float(np.percentile(lat, 50) * 1e6),
        "p99_us": float(np.percentile(lat, 99) * 1e6),
    }


async def roundtrips(kind: str, url: str, n: int) -> dict[str, float]:
    """Sequential request/response: CPU per round trip and latency percentiles."""
    async with client(kind, url) as c:
        for _ in range(min(50, n)):  # warm-up
            await c.send(PAYLOAD)
            assert await c.recv() == PAYLOAD
        lat = np.empty(n)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            await c.send(PAYLOAD)
            got = await c.recv()
            lat[i] = time.perf_counter() - t
            assert got == PAYLOAD
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return _rtt_figures(cpu, wall, lat)


async def tcp_roundtrips(port: int, n: int) -> dict[str, float]:
    """The floor: the same 6.4 KB echoed over plain asyncio TCP streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = PAYLOAD.encode()
    lat = np.empty(n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        writer.write(data)
        got = await reader.readexactly(len(data))
        lat[i] = time.perf_counter() - t
        assert got == data
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    writer.close()
    return _rtt_figures(cpu, wall, lat)


def tcp_blocking_roundtrips(port: int, n: int) -> dict[str, float]:
    """The kernel's share alone: the same 6.4 KB echo with blocking sockets, no event loop at all (what any
    client pays for one send and one receive on loopback, whatever its language)."""
    import socket

    data = PAYLOAD.encode()
    buf = bytearray(len(data))
    view = memoryview(buf)
    lat = np.empty(n)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            sock.sendall(data)
            got = 0
            while got < len(data):
                got += sock.recv_into(view[got:])
            lat[i] = time.perf_counter() - t
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    assert buf == data
    return _rtt_figures(cpu, wall, lat)


async def pipelined(kind: str, url: str, n: int) -> dict[str, float]:
    """Send n frames as fast as the client allows while a second task receives them."""
    async with client(kind, url) as c:

        async def sender() -> None:
            for _ in range(n):
                await c.send(PAYLOAD)

        async def receiver() -> int:
            ok = 0
            for _ in range(n):
                ok += (await c.recv()) == PAYLOAD
            return ok

        cpu0, t0 = time.process_time(), time.perf_counter()
        _, ok = await asyncio.gather(sender(), receiver())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    assert ok == n
    return {"msgs_per_s": n / wall, "cpu_us_per_msg": cpu / n * 1e6}


async def audio_streams(kind: str, url: str, n_conns: int, seconds: float) -> dict[str, float]:
    """n_conns connections each sending 20 ms of 24 kHz PCM16 every 20 ms and receiving the echo."""
    pcm = (np.sin(np.arange(480) / 10) * 8000).astype(np.int16).tobytes()
    want = json.loads(_json_append(pcm))["audio"]
    conns = [await CLIENTS[kind](url) for _ in range(n_conns)]
    chunks = int(seconds / 0.02)

    async def stream(c: Client) -> int:
        async def rx() -> int:
            ok = 0
            for _ in range(chunks):
                ok += json.loads(await c.recv())["audio"] == want
            return ok

        task = asyncio.create_task(rx())
        start = time.perf_counter()
        for i in range(chunks):
            delay = start + i * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await c.send_audio(pcm)
        return await task

    cpu0, t0 = time.process_time(), time.perf_counter()
    oks = await asyncio.gather(*(stream(c) for c in conns))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    for c in conns:
        await c.close()
    assert oks == [chunks] * n_conns
    return {"cpu_percent": cpu / wall * 100, "cpu_s": cpu, "wall_s": wall}


@pytest.fixture(scope="module")
def server() -> Iterator[Servers]:
    global CA_FILE
    with echo_server() as s:
        CA_FILE = s.ca_file
        try:
            yield s
        finally:
            CA_FILE = None


def _run(benchmark: Any, group: str, kind: str, coro: Callable[[], Awaitable[dict[str, float]]]) -> None:
    result: dict[str, float] = {}

    def once() -> None:
        result.update(asyncio.run(coro()))  # type: ignore[arg-type]

    benchmark.group = group
    benchmark.extra_info["client"] = kind
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result and all(v > 0 for v in result.values())


SCHEMES = ["ws", "wss"]


def _url(server: Servers, scheme: str) -> str:
    return server.tls_url if scheme == "wss" else server.url


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", list(CLIENTS))
def test_roundtrip_6k4(benchmark: Any, server: Servers, kind: str, scheme: str) -> None:
    url = _url(server, scheme)
    _run(benchmark, f"transport: 6.4 KB round trips ({scheme})", kind, lambda: roundtrips(kind, url, N_RTT))


def test_roundtrip_tcp_floor(benchmark: Any, server: Servers) -> None:
    _run(
        benchmark,
        "transport: 6.4 KB round trips (ws)",
        "raw-tcp",
        lambda: tcp_roundtrips(server.tcp_port, N_RTT),
    )


def test_roundtrip_blocking_tcp_floor(benchmark: Any, server: Servers) -> None:
    async def floor() -> dict[str, float]:
        return tcp_blocking_roundtrips(server.tcp_port, N_RTT)

    _run(benchmark, "transport: 6.4 KB round trips (ws)", "raw-tcp-blocking", floor)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", list(CLIENTS))
def test_pipelined_6k4(benchmark: Any, server: Servers, kind: str, scheme: str) -> None:
    url = _url(server, scheme)
    _run(benchmark, f"transport: pipelined 6.4 KB ({scheme})", kind, lambda: pipelined(kind, url, N_PIPE))


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_audio_streams(benchmark: Any, server: Servers, kind: str) -> None:
    _run(
        benchmark,
        "transport: concurrent 24 kHz audio streams",
        kind,
        lambda: audio_streams(kind, server.url, N_STREAMS, STREAM_SECONDS),
    )


def main() -> None:
    """Full side-by-side run; prints a markdown table per benchmark, medians of `repeats` runs."""
    global CA_FILE
    repeats = int(os.environ.get("REPEATS", "3"))
    only = os.environ.get("ONLY", "rtt,pipe,rtt-tls,pipe-tls,audio").split(",")
    kinds = os.environ.get("KINDS", ",".join(CLIENTS)).split(",")
    tables: dict[str, dict[str, list[dict[str, float]]]] = collections.defaultdict(dict)
    with echo_server() as srv:
        CA_FILE = srv.ca_file
        jobs: dict[str, Callable[[str], Awaitable[dict[str, float]]]] = {
            "rtt": lambda kind: roundtrips(kind, srv.url, N_RTT),
            "pipe": lambda kind: pipelined(kind, srv.url, N_PIPE),
            "rtt-tls": lambda kind: roundtrips(kind, srv.tls_url, N_RTT),
            "pipe-tls": lambda kind: pipelined(kind, srv.tls_url, N_PIPE),
            "audio": lambda kind: audio_streams(kind, srv.url, N_STREAMS, STREAM_SECONDS),
        }
        for rep in range(repeats):
            for name in only:
                for kind in kinds:  # interleaved so drift hits every client alike
                    tables[name].setdefault(kind, []).append(asyncio.run(jobs[name](kind)))  # type: ignore[arg-type]
                if name == "rtt":
                    floor = asyncio.run(tcp_roundtrips(srv.tcp_port, N_RTT))
                    tables[name].setdefault("raw-tcp", []).append(floor)
                    kernel = tcp_blocking_roundtrips(srv.tcp_port, N_RTT)
                    tables[name].setdefault("raw-tcp-blocking", []).append(kernel)
            print(f"repeat {rep + 1}/{repeats} done", file=sys.stderr, flush=True)
    for name, rows in tables.items():
        keys = list(next(iter(rows.values()))[0])
        print(f"\n### {name}\n\n| client | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for kind, runs in rows.items():
            med = [statistics.median(r[k] for r in runs) for k in keys]
            print(f"| {kind} | " + " | ".join(f"{v:.1f}" for v in med) + " |")


if __name__ == "__main__":
    main()
