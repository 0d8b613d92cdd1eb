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


# The full-duplex session benchmark (fastvoice vs openai-agents, N sessions) is in bench_realtime_load.py.
