"""Realtime model-layer benchmarks: telemetry overhead, client-event encoding, event validation, and how
fast the fake server can feed a client. Competitors sit in the same group; every output is asserted correct.

Timed run:
    .venv/bin/python -m pytest benches/bench_realtime.py --benchmark-enable --benchmark-only \
        --benchmark-columns=median,iqr,ops -p no:randomly
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pybase64
import pydantic
import pytest
from fastvoice import realtime as rt
from fastvoice import telemetry
from fastvoice.audio import parse_audio_delta
from fastvoice.realtime import _protocol as P
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse, validate_client_event
from openai.types.realtime import RealtimeClientEvent
from websockets.asyncio.client import connect

EVENT = telemetry.REALTIME_AUDIO_SENT
PCM_20MS = (np.sin(np.arange(480) / 5.0) * 9000).astype("<i2").tobytes()  # 20 ms of 24 kHz PCM16


def run(benchmark: Any, group: str, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    benchmark.group = group
    benchmark.extra_info["impl"] = name
    return benchmark(fn, *args)


@pytest.fixture(autouse=True)
def no_handlers() -> Iterator[None]:
    for h in telemetry.list_handlers():
        telemetry.detach(h.id)
    yield
    for h in telemetry.list_handlers():
        telemetry.detach(h.id)


# --- telemetry: the cost of emitting per audio chunk ---

LOOPS = 1000


def emit_loop() -> int:
    for _ in range(LOOPS):
        telemetry.execute(EVENT, {"bytes": 960}, None)
    return LOOPS


def log_loop() -> int:
    log = logging.getLogger("fastvoice.bench.disabled")
    log.setLevel(logging.WARNING)
    for _ in range(LOOPS):
        log.debug("sent %d bytes", 960)
    return LOOPS


def empty_loop() -> int:
    def nothing(a: object, b: object, c: object) -> None:
        return None

    for _ in range(LOOPS):
        nothing(EVENT, {"bytes": 960}, None)
    return LOOPS


def test_execute_no_handlers(benchmark: Any) -> None:
    assert run(benchmark, "telemetry x1000", "fastvoice execute, no handler", emit_loop) == LOOPS


def test_disabled_debug_log(benchmark: Any) -> None:
    assert run(benchmark, "telemetry x1000", "logging.debug, level disabled", log_loop) == LOOPS


def test_empty_call_baseline(benchmark: Any) -> None:
    assert run(benchmark, "telemetry x1000", "empty function call (floor)", empty_loop) == LOOPS


def test_execute_one_handler(benchmark: Any) -> None:
    total = [0]

    def count(name: Any, meas: Any, meta: Any, cfg: Any) -> None:
        total[0] += meas["bytes"]

    telemetry.attach("count", EVENT, count)
    run(benchmark, "telemetry x1000", "fastvoice execute, 1 handler", emit_loop)
    assert total[0] > 0 and total[0] % (960 * LOOPS) == 0


@pytest.mark.parametrize("otel", [True, False], ids=["otel-noop", "otel-off"])
def test_span_no_handlers(benchmark: Any, otel: bool) -> None:
    def spans() -> int:
        for _ in range(100):
            with telemetry.span(("fastvoice", "realtime", "tool"), {"tool": "t"}):
                pass
        return 100

    saved = telemetry._otel_tracer, telemetry._otel_checked
    if not otel:  # what a user without opentelemetry-api installed gets
        telemetry._otel_tracer, telemetry._otel_checked = None, True
    try:
        name = "span, OTel API no-op tracer" if otel else "span, no OTel"
        assert run(benchmark, "telemetry span x100", name, spans) == 100
    finally:
        telemetry._otel_tracer, telemetry._otel_checked = saved


# --- encoding one 20 ms input_audio_buffer.append frame ---


def encode_stdlib() -> str:
    return json.dumps(P.input_audio_buffer_append(PCM_20MS))


def encode_fast() -> bytes:
    return orjson.dumps({"type": "input_audio_buffer.append", "audio": pybase64.b64encode(PCM_20MS).decode()})


@pytest.mark.parametrize(
    ("name", "fn"), [("builder + base64 + json (stdlib)", encode_stdlib), ("pybase64 + orjson", encode_fast)]
)
def test_encode_append(benchmark: Any, name: str, fn: Callable[[], str | bytes]) -> None:
    out = run(benchmark, "encode append 20ms", name, fn)
    assert base64.b64decode(json.loads(out)["audio"]) == PCM_20MS


# --- validating client events (what the fake server does per frame) ---

SESSION_UPDATE = rt.build_session_update(
    rt.agent("A", "Be brief.", tools=[{"name": "t", "description": "d", "parameters": {"type": "object"}}])
)
APPEND = P.input_audio_buffer_append(PCM_20MS)
ADAPTER = pydantic.TypeAdapter(RealtimeClientEvent)


@pytest.mark.parametrize(("label", "event"), [("session.update", SESSION_UPDATE), ("append", APPEND)])
@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("TypeAdapter(RealtimeClientEvent)", ADAPTER.validate_python),
        ("validate_client_event (strict)", validate_client_event),
    ],
)
def test_validate(
    benchmark: Any, label: str, event: dict[str, Any], name: str, fn: Callable[..., Any]
) -> None:
    parsed = run(benchmark, f"validate {label}", name, fn, event)
    assert parsed.type == event["type"]


# --- fake server: 10 s of 20 ms audio deltas to one websockets client ---


async def stream(strict: bool, n: int) -> int:
    async with FakeRealtimeServer(strict=strict) as server, connect(server.url, max_size=None) as ws:
        await ws.recv()
        task = asyncio.create_task(server.respond(ScriptedResponse(audio=[PCM_20MS] * n)))
        received = 0
        while True:
            event = orjson.loads(await ws.recv())
            if event["type"] == "response.output_audio.delta":
                received += len(pybase64.b64decode(event["delta"]))
            elif event["type"] == "response.done":
                break
        await task
        return received


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "unchecked"])
def test_fake_server_stream(benchmark: Any, strict: bool) -> None:
    n = 500
    benchmark.group = "fake server: 500 deltas (10 s audio)"
    benchmark.extra_info["impl"] = f"FakeRealtimeServer strict={strict}"
    got = benchmark.pedantic(lambda: asyncio.run(stream(strict, n)), rounds=3, iterations=1)
    assert got == n * len(PCM_20MS)


# --- per-frame dispatch of 50 audio deltas (1 s of audio): what each client does with a received frame ---

DELTA_FRAMES = [
    json.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": f"ev_{i}",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(PCM_20MS).decode(),
        }
    )
    for i in range(50)
]


def _bench_session() -> tuple[rt.Session, list[Any]]:
    session = rt.Session(rt.agent("A", "x"), api_key="sk-bench-000000")
    got: list[Any] = []
    session.subscribe(got.append)
    return session, got


def dispatch_native(session: rt.Session, got: list[Any]) -> bytes:
    got.clear()
    out: list[Any] = []
    for frame in DELTA_FRAMES:  # the transport does this parse off the loop thread
        d = parse_audio_delta(frame)
        assert d is not None
        session._on_audio(d.pcm, d.item_id, d.content_index, d.response_id, out)
    session._fanout.deliver(out)
    return b"".join(e.audio for e in got if isinstance(e, rt.events.RealtimeAudioEvent))


def dispatch_json(session: rt.Session, got: list[Any]) -> bytes:
    got.clear()
    out: list[Any] = []
    for frame in DELTA_FRAMES:
        session._on_text(frame, out)
    session._fanout.deliver(out)
    return b"".join(e.audio for e in got if isinstance(e, rt.events.RealtimeAudioEvent))


def dispatch_openai_agents_style() -> bytes:
    from agents.realtime.openai_realtime import get_server_event_type_adapter

    adapter = get_server_event_type_adapter()
    audio = b""
    for frame in DELTA_FRAMES:  # json.loads, then pydantic validation of the event, then base64
        event = adapter.validate_python(json.loads(frame))
        audio += base64.b64decode(event.delta)
    return audio


def dispatch_preparsed(session: rt.Session, got: list[Any]) -> bytes:
    got.clear()
    out: list[Any] = []
    for d in PARSED:  # the loop thread's share when the transport delivers AudioDelta objects
        session._on_audio(d.pcm, d.item_id, d.content_index, d.response_id, out)
    session._fanout.deliver(out)
    return b"".join(e.audio for e in got if isinstance(e, rt.events.RealtimeAudioEvent))


PARSED = [d for d in map(parse_audio_delta, DELTA_FRAMES) if d is not None]
DISPATCH_IMPLS = {
    "fastvoice, loop-thread share (AudioDelta from the transport)": dispatch_preparsed,
    "fastvoice, parse + dispatch (AudioDelta)": dispatch_native,
    "fastvoice, JSON fallback path": dispatch_json,
}


@pytest.mark.parametrize("impl", [*DISPATCH_IMPLS, "openai-agents parse + validate + base64 only"])
def test_dispatch_50_deltas(benchmark: Any, impl: str) -> None:
    benchmark.group = "dispatch 50 audio deltas"
    benchmark.extra_info["impl"] = impl
    if impl.startswith("openai-agents"):
        pytest.importorskip("agents.realtime", reason="openai-agents is not installed (test extra)")
        got = benchmark(dispatch_openai_agents_style)
    else:
        session, sink = _bench_session()
        got = benchmark(DISPATCH_IMPLS[impl], session, sink)
    assert got == PCM_20MS * 50


# --- full-duplex sessions: fastvoice Session vs openai-agents RealtimeSession -------------------------------
#
# N sessions in this process talk to a load server in another process (so this process's CPU time is the
# client's alone). Each session sends 20 ms chunks of 24 kHz PCM16 every 20 ms and receives one 20 ms audio
# delta every 20 ms (absolute schedule, like a real server streaming at playback speed). The server writes its
# CLOCK_MONOTONIC send time (ns) into each delta's response_id, so delivery latency = when the subscriber got
# the event minus when the server sent it (one clock: same machine). Smoke mode (the normal test run): 2
# sessions for 1 s. FASTVOICE_BENCH_FULL=1: 30 s runs at growing N. Run the matrix directly with
# `python benches/bench_realtime.py --matrix` (prints a table for docs/bench-notes/session.md).

LOAD_FULL = os.environ.get("FASTVOICE_BENCH_FULL") == "1"
DELTA_B64 = base64.b64encode(PCM_20MS).decode()


def _frame(event: dict[str, Any]) -> str:
    return json.dumps(event)


def _b64_size(msg: str) -> int:
    """Decoded size of the ``audio`` member, without decoding (keeps the load server cheap)."""
    start = msg.index('"audio":') + 8
    start = msg.index('"', start) + 1
    end = msg.index('"', start)
    return (end - start) * 3 // 4 - (msg[end - 2 : end].count("="))


async def _serve_conn(ws: Any, duration: float, stats: list[int]) -> None:
    from fastvoice.testing._state import default_session

    session = default_session("gpt-realtime")
    await ws.send(_frame({"type": "session.created", "event_id": "e0", "session": session}))
    streamer: asyncio.Task[None] | None = None
    received = 0

    async def stream() -> None:
        rid0, item = "resp_1", "item_1"
        created = {"id": rid0, "object": "realtime.response", "status": "in_progress", "output": []}
        await ws.send(_frame({"type": "response.created", "event_id": "e1", "response": created}))
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = int(duration * 50)
        for k in range(n):
            delay = start + k * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(
                '{"type":"response.output_audio.delta","event_id":"d","response_id":"t'
                + str(time.monotonic_ns())
                + f'","item_id":"{item}","output_index":0,"content_index":0,"delta":"{DELTA_B64}"}}'
            )
        done = {"type": "response.output_audio.done", "event_id": "e2", "response_id": rid0}
        await ws.send(_frame({**done, "item_id": item, "output_index": 0, "content_index": 0}))
        finished = {**created, "status": "completed"}
        await ws.send(_frame({"type": "response.done", "event_id": "e3", "response": finished}))

    try:
        async for msg in ws:
            if "input_audio_buffer.append" in msg[:64] or msg.endswith('"input_audio_buffer.append"}'):
                received += _b64_size(msg)
            elif '"session.update"' in msg and streamer is None:
                await ws.send(_frame({"type": "session.updated", "event_id": "e4", "session": session}))
                streamer = asyncio.create_task(stream())
    except Exception:
        pass
    finally:
        if streamer is not None:
            streamer.cancel()
        stats.append(received)
        print(f"conn-bytes {received}", flush=True)


def serve_main(duration: float) -> None:
    """The load server (run in its own process): prints its port, then serves until killed."""
    import functools

    from websockets.asyncio.server import serve

    async def main() -> None:
        stats: list[int] = []
        handler = functools.partial(_serve_conn, duration=duration, stats=stats)
        async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None) as srv:
            port = next(iter(srv.sockets)).getsockname()[1]
            print(f"port {port}", flush=True)
            await asyncio.Future()

    asyncio.run(main())


class LoadServer:
    def __init__(self, duration: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(duration)], stdout=subprocess.PIPE, bufsize=0
        )
        self._buf = b""
        line = self._readline(10.0)
        assert line.startswith("port "), line
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/v1/realtime?model=gpt-realtime"

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
        return counts


async def _sender(send: Callable[[bytes], Any], duration: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(int(duration * 50)):
        delay = start + k * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(PCM_20MS)


async def _fastvoice_session(url: str, duration: float, lat: list[int], done: asyncio.Event) -> int:
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(turn_detection=None))
    session = rt.Session(rt.agent("A", "x"), config, api_key="sk-bench-000000", url=url)
    got = [0]

    def on_event(e: Any) -> None:
        if type(e) is rt.events.RealtimeAudioEvent:
            lat.append(time.monotonic_ns() - int(e.response_id[1:]))
            got[0] += len(e.audio)
        elif type(e) is rt.events.RealtimeAgentEndEvent:
            done.set()

    session.subscribe(on_event)  # before start(): the first delta may come right behind session.updated
    await session.start()
    await _sender(session.send_audio, duration)
    await asyncio.wait_for(done.wait(), 10)
    await session.stop()
    return got[0]


async def _agents_session(url: str, duration: float, lat: list[int], done: asyncio.Event) -> int:
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
                    lat.append(time.monotonic_ns() - int(e.audio.response_id[1:]))
                    got[0] += len(e.audio.data)
                elif e.type == "agent_end":
                    done.set()

        task = asyncio.create_task(pump())
        await _sender(session.send_audio, duration)
        await asyncio.wait_for(done.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got[0]


def run_load(impl: str, n: int, duration: float) -> dict[str, Any]:
    """N concurrent sessions of ``impl`` ("fastvoice" or "openai-agents") for ``duration`` seconds."""
    if impl == "openai-agents":
        import agents.realtime  # noqa: F401 - imported before the CPU clock starts
    server = LoadServer(duration)
    lat: list[int] = []
    fn = _fastvoice_session if impl == "fastvoice" else _agents_session

    async def main() -> tuple[list[int], float, float, float]:
        dones = [asyncio.Event() for _ in range(n)]
        cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.monotonic()
        got = await asyncio.gather(*(fn(server.url, duration, lat, d) for d in dones))
        cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
        return list(got), cpu, thread, time.monotonic() - wall0

    try:
        got, cpu, loop_cpu, wall = asyncio.run(main())
    finally:
        server_bytes = server.stop(n)
    arr = np.array(lat, dtype=np.float64) / 1e6
    return {
        "impl": impl,
        "n": n,
        "duration_s": duration,
        "cpu_s": cpu,
        "loop_thread_cpu_s": loop_cpu,
        "wall_s": wall,
        "cpu_s_per_session_min": cpu / (n * duration / 60),
        "p50_ms": float(np.percentile(arr, 50)) if arr.size else float("nan"),
        "p99_ms": float(np.percentile(arr, 99)) if arr.size else float("nan"),
        "max_ms": float(arr.max()) if arr.size else float("nan"),
        "received_bytes": got,
        "server_bytes": server_bytes,
    }


LOAD_CASES = [(impl, n) for impl in ("fastvoice", "openai-agents") for n in ((10, 50) if LOAD_FULL else (2,))]


@pytest.mark.parametrize(("impl", "n"), LOAD_CASES)
def test_full_duplex_sessions(impl: str, n: int) -> None:
    if impl == "openai-agents":
        pytest.importorskip("agents.realtime", reason="openai-agents is not installed (test extra)")
    duration = 30.0 if LOAD_FULL else 1.0
    r = run_load(impl, n, duration)
    print(
        f"{impl} n={n} {duration:.0f}s: cpu {r['cpu_s_per_session_min']:.3f} s/session-min, "
        f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
    )
    frames = int(duration * 50)
    # Every delta reached the subscriber intact, and every chunk sent reached the server.
    assert r["received_bytes"] == [frames * len(PCM_20MS)] * n
    assert sorted(r["server_bytes"]) == [frames * len(PCM_20MS)] * n
    assert 0 < r["p50_ms"] <= r["p99_ms"] < 1000


def matrix(ns: list[int], duration: float, impls: list[str]) -> None:
    rows = []
    for n in ns:
        for impl in impls:
            r = run_load(impl, n, duration)
            rows.append(r)
            print(
                f"| {impl} | {n} | {r['cpu_s']:.2f} | {r['loop_thread_cpu_s']:.2f} | "
                f"{r['cpu_s_per_session_min']:.4f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_main(float(sys.argv[2]))
    elif sys.argv[1:2] == ["--matrix"]:
        ns = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1,10,25,50").split(",")]
        impls = sys.argv[4].split(",") if len(sys.argv) > 4 else ["fastvoice", "openai-agents"]
        matrix(ns, float(sys.argv[2]) if len(sys.argv) > 2 else 30.0, impls)
