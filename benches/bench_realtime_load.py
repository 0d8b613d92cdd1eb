"""Full-duplex realtime sessions: fastvoice next to openai-agents-python's RealtimeSession, N at once.

N sessions in this process talk to a load server in another process (so this process's CPU time is the
client's alone). Each session sends 20 ms chunks of 24 kHz PCM16 every 20 ms and receives one 20 ms audio
delta every 20 ms (absolute schedule, like a real server streaming at playback speed). The server writes its
CLOCK_MONOTONIC send time (ns) into each delta's response_id, so delivery latency = when the subscriber got
the event minus when the server sent it (one clock: same machine), counted from 2 s into the run (start-up
of the N sessions is not steady-state delivery; the same rule for every client). ``SCHEME=wss`` runs it over
TLS, as the real API is (a certificate from a CA made at run time; every client trusts that CA).

Clients:
- ``fastvoice``: the same Python loop as openai-agents (``await session.send_audio(chunk)`` every 20 ms, one
  ``RealtimeAudioEvent`` per delta to a subscriber);
- ``fastvoice-native``: the audio never enters Python: the microphone is a ``RingBuffer`` the transport
  pumps (``session.stream_audio_from(ring, pace=True)``, pre-filled like a recording) and the speaker a
  ``RingBuffer`` the transport fills (``playback.use_ring_buffer(ring, audio_events=False)``). Its latency
  comes from probe sessions (every 10th, at least one) that keep Python audio events: the same socket reads
  plus a loop wake-up, so an upper bound for the native ones;
- ``openai-agents``: ``RealtimeRunner`` → ``RealtimeSession``, pointed at the same URL, ``async for`` events.

The load server is picows (Cython) so that it is not what limits the session count.

Smoke mode (the normal test run): 2 sessions for 1 s. ``FASTVOICE_BENCH_FULL=1``: 30 s at N = 10, 50. Matrix:
``python benches/bench_realtime_load.py --matrix DURATION N1,N2 [impl,impl]`` prints rows for
docs/bench-notes/session.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastvoice import audio
from fastvoice import realtime as rt

PCM_20MS = (np.sin(np.arange(480) / 5.0) * 9000).astype("<i2").tobytes()  # 20 ms of 24 kHz PCM16
LOAD_FULL = os.environ.get("FASTVOICE_BENCH_FULL") == "1"
DELTA_B64 = base64.b64encode(PCM_20MS).decode()
IMPLS = ("fastvoice", "fastvoice-native", "openai-agents", "picows-floor")


CREATED = {"id": "resp_1", "object": "realtime.response", "status": "in_progress", "output": []}


def _frame(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def _b64_size(msg: str) -> int:
    """Decoded size of the ``audio`` member, without decoding (keeps the load server cheap)."""
    start = msg.index('"audio":') + 8
    start = msg.index('"', start) + 1
    end = msg.index('"', start)
    return (end - start) * 3 // 4 - (msg[end - 2 : end].count("="))


def serve_main(duration: float, cert_file: str | None) -> None:
    """The load server (run in its own process): prints its port, then serves until killed."""
    import ssl

    from fastvoice.testing._state import default_session
    from picows import WSListener, WSMsgType, ws_create_server

    session = default_session("gpt-realtime")
    n_deltas = int(duration * 50)
    delta_head = b'{"type":"response.output_audio.delta","event_id":"d","response_id":"t'
    delta_tail = f'","item_id":"item_1","output_index":0,"content_index":0,"delta":"{DELTA_B64}"}}'.encode()

    class Conn(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.t: Any = None
            self.received = 0
            self.streaming = False
            self.timer: asyncio.TimerHandle | None = None

        def send(self, event: dict[str, Any]) -> None:
            self.t.send(WSMsgType.TEXT, _frame(event))

        def on_ws_connected(self, transport: Any) -> None:
            self.t = transport
            self.send({"type": "session.created", "event_id": "e0", "session": session})

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
                return
            if frame.msg_type != WSMsgType.TEXT:
                return
            msg = frame.get_payload_as_ascii_text()
            if '"input_audio_buffer.append"' in msg[:80] or msg.endswith('"input_audio_buffer.append"}'):
                self.received += _b64_size(msg)
            elif '"session.update"' in msg and not self.streaming:
                self.streaming = True
                self.send({"type": "session.updated", "event_id": "e4", "session": session})
                self.send({"type": "response.created", "event_id": "e1", "response": CREATED})
                loop = asyncio.get_running_loop()
                self._tick(loop, loop.time(), 0)

        def _tick(self, loop: asyncio.AbstractEventLoop, start: float, k: int) -> None:
            if k < n_deltas:
                self.t.send(WSMsgType.TEXT, delta_head + str(time.monotonic_ns()).encode() + delta_tail)
                self.timer = loop.call_at(start + (k + 1) * 0.02, self._tick, loop, start, k + 1)
                return
            where = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}
            self.send({"type": "response.output_audio.done", "event_id": "e2", **where})
            finished = {**CREATED, "status": "completed"}
            self.send({"type": "response.done", "event_id": "e3", "response": finished})

        def on_ws_disconnected(self, transport: Any) -> None:
            if self.timer is not None:
                self.timer.cancel()
            print(f"conn-bytes {self.received}", flush=True)

    ctx = None
    if cert_file is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_file)

    async def main() -> None:
        srv = await ws_create_server(
            lambda _request: Conn(), "127.0.0.1", 0, max_frame_size=16 * 2**20, ssl=ctx
        )
        print(f"port {srv.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()

    asyncio.run(main())


class LoadServer:
    def __init__(self, duration: float, tls: bool = False) -> None:
        args = [sys.executable, __file__, "--serve", str(duration)]
        self.ca_file: str | None = None
        self._tmp = tempfile.TemporaryDirectory()
        if tls:
            import trustme

            ca = trustme.CA()
            self.ca_file = os.path.join(self._tmp.name, "ca.pem")
            cert_file = os.path.join(self._tmp.name, "server.pem")
            ca.cert_pem.write_to_path(self.ca_file)
            ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(cert_file)
            args.append(cert_file)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, bufsize=0)
        self._buf = b""
        line = self._readline(10.0)
        assert line.startswith("port "), line
        host = "wss://localhost" if tls else "ws://127.0.0.1"
        self.url = f"{host}:{int(line.split()[1])}/v1/realtime?model=gpt-realtime"

    def _readline(self, timeout: float) -> str:
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def stop(self, n: int) -> list[int]:
        """Wait (up to 10 s) until the server has seen all ``n`` connections close, then stop it."""
        counts: list[int] = []
        deadline = time.monotonic() + 10
        while len(counts) < n and (left := deadline - time.monotonic()) > 0:
            line = self._readline(left)
            if line.startswith("conn-bytes"):
                counts.append(int(line.split()[1]))
        self.proc.terminate()
        self.proc.communicate(timeout=10)
        self._tmp.cleanup()
        return counts


async def _sender(send: Callable[[bytes], Any], duration: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(int(duration * 50)):
        delay = start + k * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(PCM_20MS)


#: Deltas sent before this (CLOCK_MONOTONIC ns) are left out of the latency figures: the first seconds, while
#: the N sessions are still being started, measure start-up, not steady delivery (the same rule for all).
_warm_ns = 0
WARMUP_S = 2.0
#: The run-time test CA when the server speaks wss:// (fastvoice gets it as ``ca_file``; openai-agents, which
#: has no such option, through ``SSL_CERT_FILE``, which OpenSSL's default verify paths read).
_ca_file: str | None = None


def _config() -> rt.RunConfig:
    return rt.RunConfig(model_settings=rt.SessionModelSettings(turn_detection=None))


def _session(url: str) -> rt.Session:
    kwargs = {"ca_file": _ca_file} if _ca_file else None
    return rt.Session(
        rt.agent("A", "x"), _config(), api_key="sk-bench-000000", url=url, connect_kwargs=kwargs
    )


async def _fastvoice_session(url: str, duration: float, lat: list[int], done: asyncio.Event, i: int) -> int:
    session = _session(url)
    got = [0]

    def on_event(e: Any) -> None:
        if type(e) is rt.events.RealtimeAudioEvent:
            sent = int(e.response_id[1:])
            if sent > _warm_ns:
                lat.append(time.monotonic_ns() - sent)
            got[0] += len(e.audio)
        elif type(e) is rt.events.RealtimeAgentEndEvent:
            done.set()

    session.subscribe(on_event)  # before start(): the first delta may come right behind session.updated
    await session.start()
    await _sender(session.send_audio, duration)
    await asyncio.wait_for(done.wait(), 10)
    await session.stop()
    return got[0]


async def _native_session(url: str, duration: float, lat: list[int], done: asyncio.Event, i: int) -> int:
    if i % 10 == 0:  # a latency probe (see the module docstring)
        return await _fastvoice_session(url, duration, lat, done, i)
    session = _session(url)
    frames = int(duration * 50)
    mic = audio.RingBuffer(480 * frames)
    mic.write(np.frombuffer(PCM_20MS * frames, np.int16))  # a recording, sent at real time by the transport
    speaker = audio.RingBuffer(24000)  # no consumer: drop_oldest keeps the last second; `written` counts all

    def on_event(e: Any) -> None:
        if type(e) is rt.events.RealtimeAgentEndEvent:
            done.set()

    session.subscribe(on_event)
    session.playback.use_ring_buffer(speaker, audio_events=False)
    await session.start()
    session.stream_audio_from(mic, pace=True)
    await asyncio.wait_for(done.wait(), duration + 10)
    conn = session._conn
    assert conn is not None
    while conn.audio_input_sent < 480 * frames:
        await asyncio.sleep(0.02)
    await session.stop()
    tail = speaker.read().tobytes()
    assert tail == (PCM_20MS * 50)[-len(tail) :] and len(tail) == min(24000, 480 * frames) * 2
    return speaker.written * 2


async def _agents_session(url: str, duration: float, lat: list[int], done: asyncio.Event, i: int) -> int:
    from agents.realtime import RealtimeAgent, RealtimeRunner

    runner = RealtimeRunner(
        RealtimeAgent(name="A", instructions="x"),
        config={"model_settings": {"turn_detection": None}},  # type: ignore[typeddict-item]
    )
    session = await runner.run(model_config={"url": url, "api_key": "sk-bench-000000"})
    got = [0]
    async with session:

        async def pump() -> None:
            async for e in session:
                if e.type == "audio":
                    sent = int(e.audio.response_id[1:])
                    if sent > _warm_ns:
                        lat.append(time.monotonic_ns() - sent)
                    got[0] += len(e.audio.data)
                elif e.type == "agent_end":
                    done.set()

        task = asyncio.create_task(pump())
        await _sender(session.send_audio, duration)
        await asyncio.wait_for(done.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got[0]


APPEND_FRAME = json.dumps({"type": "input_audio_buffer.append", "audio": DELTA_B64}).encode()
_floor_conns: list[Any] = []  # [transport, frames left] of every floor session, served by one ticker
_floor_tasks: set[asyncio.Task[None]] = set()


async def _floor_ticker() -> None:
    from picows import WSMsgType

    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while _floor_conns:
        for entry in list(_floor_conns):
            if entry[1] > 0:
                entry[0].send(WSMsgType.TEXT, APPEND_FRAME)
                entry[1] -= 1
        k += 1
        await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))


async def _floor_session(url: str, duration: float, lat: list[int], done: asyncio.Event, i: int) -> int:
    """The floor: a bare picows (Cython) WebSocket client doing the same socket traffic with nothing else: a
    prebuilt append frame every 20 ms from one shared timer, deltas counted by size (no JSON, no base64, no
    session logic). What any client on this machine pays for the I/O alone."""
    import ssl

    from picows import WSListener, WSMsgType, ws_connect

    frames = int(duration * 50)
    got = [0]

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            data = frame.get_payload_as_bytes()
            if data.startswith(b'{"type":"response.output_audio.delta"'):
                at = data.index(b'"response_id":"t') + 16
                sent = int(data[at : data.index(b'"', at)])
                if sent > _warm_ns:
                    lat.append(time.monotonic_ns() - sent)
                b64 = len(data) - (data.rindex(b'"delta":"') + 9) - 2
                got[0] += b64 * 3 // 4
            elif b'"response.done"' in data[:40]:
                done.set()

    ctx = ssl.create_default_context(cafile=_ca_file) if _ca_file else None
    transport, _ = await ws_connect(Listener, url, ssl_context=ctx)
    transport.send(WSMsgType.TEXT, json.dumps(_protocol_update()).encode())
    entry = [transport, frames]
    _floor_conns.append(entry)
    if len(_floor_conns) == 1:  # the first one starts the shared ticker; it ends when the list empties
        _floor_tasks.add(asyncio.create_task(_floor_ticker()))
    try:
        await asyncio.wait_for(done.wait(), duration + 10)
        while entry[1] > 0:
            await asyncio.sleep(0.02)
    finally:
        _floor_conns.remove(entry)
    transport.send_close()
    transport.disconnect()
    return got[0]


def _protocol_update() -> dict[str, Any]:
    from fastvoice.realtime import _protocol as P

    return P.build_session_update(rt.agent("A", "x"), _config())


SESSIONS = {
    "fastvoice": _fastvoice_session,
    "fastvoice-native": _native_session,
    "openai-agents": _agents_session,
    "picows-floor": _floor_session,
}


def run_load(impl: str, n: int, duration: float, tls: bool = False) -> dict[str, Any]:
    """N concurrent sessions of ``impl`` for ``duration`` seconds (over wss:// with ``tls``)."""
    global _ca_file
    if impl == "openai-agents":
        import agents.realtime  # noqa: F401 - imported before the CPU clock starts
    server = LoadServer(duration, tls)
    _ca_file = server.ca_file
    saved_cert_env = os.environ.get("SSL_CERT_FILE")
    if server.ca_file is not None:
        os.environ["SSL_CERT_FILE"] = server.ca_file
    lat: list[int] = []
    sys_times: list[float] = []  # kernel share of the CPU time (socket syscalls, loopback TCP, wake-ups)
    fn = SESSIONS[impl]

    async def main() -> tuple[list[int], float, float, float]:
        global _warm_ns
        _warm_ns = time.monotonic_ns() + int(min(WARMUP_S, duration / 2) * 1e9)
        dones = [asyncio.Event() for _ in range(n)]
        cpu0, thread0, wall0, t0 = time.process_time(), time.thread_time(), time.monotonic(), os.times()
        got = await asyncio.gather(*(fn(server.url, duration, lat, d, i) for i, d in enumerate(dones)))
        cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
        sys_times.append(os.times().system - t0.system)
        return list(got), cpu, thread, time.monotonic() - wall0

    try:
        got, cpu, loop_cpu, wall = asyncio.run(main())
    finally:
        server_bytes = server.stop(n)
        _ca_file = None
        if saved_cert_env is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved_cert_env
    arr = np.array(lat, dtype=np.float64) / 1e6
    return {
        "impl": impl,
        "n": n,
        "duration_s": duration,
        "cpu_s": cpu,
        "loop_thread_cpu_s": loop_cpu,
        "wall_s": wall,
        "cpu_s_per_session_min": cpu / (n * duration / 60),
        "sys_s": sys_times[0],
        "p50_ms": float(np.percentile(arr, 50)) if arr.size else float("nan"),
        "p99_ms": float(np.percentile(arr, 99)) if arr.size else float("nan"),
        "max_ms": float(arr.max()) if arr.size else float("nan"),
        "received_bytes": got,
        "server_bytes": server_bytes,
    }


LOAD_CASES = [
    (impl, n, scheme) for impl in IMPLS for n in ((10, 50) if LOAD_FULL else (2,)) for scheme in ("ws", "wss")
]


@pytest.mark.parametrize(("impl", "n", "scheme"), LOAD_CASES)
def test_full_duplex_sessions(impl: str, n: int, scheme: str) -> None:
    if impl == "openai-agents":
        pytest.importorskip("agents.realtime", reason="openai-agents is not installed (test extra)")
    duration = 30.0 if LOAD_FULL else 1.0
    r = run_load(impl, n, duration, scheme == "wss")
    print(
        f"{impl} {scheme} n={n} {duration:.0f}s: cpu {r['cpu_s_per_session_min']:.3f} s/session-min, "
        f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
    )
    frames = int(duration * 50)
    # Every delta reached the subscriber (or the speaker ring) intact; every chunk sent reached the server.
    assert r["received_bytes"] == [frames * len(PCM_20MS)] * n
    assert sorted(r["server_bytes"]) == [frames * len(PCM_20MS)] * n
    assert 0 < r["p50_ms"] <= r["p99_ms"] < 1000


def matrix(ns: list[int], duration: float, impls: list[str], tls: bool) -> None:
    head = "impl | N | CPU s | of which kernel s | loop-thread CPU s | CPU s / session-min"
    head += " | p50 ms | p99 ms | max ms"
    print(f"| {head} |\n" + "|---" * (head.count("|") + 1) + "|")
    for n in ns:
        for impl in impls:
            r = run_load(impl, n, duration, tls)
            ok = r["received_bytes"] == [int(duration * 50) * len(PCM_20MS)] * n
            print(
                f"| {impl} | {n} | {r['cpu_s']:.2f} | {r['sys_s']:.2f} | {r['loop_thread_cpu_s']:.2f} | "
                f"{r['cpu_s_per_session_min']:.4f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} |" + ("" if ok else " (audio incomplete!)"),
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_main(float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif sys.argv[1:2] == ["--matrix"]:
        ns = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1,10,25,50").split(",")]
        impls = sys.argv[4].split(",") if len(sys.argv) > 4 else list(IMPLS)
        tls = os.environ.get("SCHEME") == "wss"
        matrix(ns, float(sys.argv[2]) if len(sys.argv) > 2 else 30.0, impls, tls)
