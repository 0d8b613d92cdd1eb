"""Native audio I/O on a transport connection: deltas routed into a playback ring, a microphone ring pumped
out as append frames, atomic cuts — against the validating `FakeRealtimeServer` (a real WebSocket peer)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import numpy as np
import pytest
from fastvoice import transport
from fastvoice.audio import AudioDelta, RingBuffer, alaw_encode, ulaw_decode, ulaw_encode
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from hypothesis import given, settings
from hypothesis import strategies as st

URL_SUFFIX = "?model=gpt-realtime"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def _chunks(n: int, samples: int = 480, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-32768, 32767, samples, dtype=np.int16).tobytes() for _ in range(n)]


async def _until_done(conn: transport.Connection) -> list[object]:
    got: list[object] = []
    while True:
        msg = await asyncio.wait_for(conn.recv(), 5)
        got.append(msg)
        if isinstance(msg, str) and json.loads(msg)["type"] == "response.done":
            return got


async def _wait(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_output_deltas_go_to_the_ring_with_one_notice_per_item() -> None:
    first, second = _chunks(5, seed=1), _chunks(3, seed=2)
    ring = RingBuffer(48000)
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX, decode_audio=True) as conn:
            conn.set_audio_output(ring)
            await conn.recv()  # session.created
            await server.respond(ScriptedResponse(audio=first, transcript="one"))
            got = await _until_done(conn)
            state = conn.audio_output_state()
            await server.respond(ScriptedResponse(audio=second, transcript="two"))
            got2 = await _until_done(conn)
            state2 = conn.audio_output_state()
        assert server.invalid_frames == []
    notices = [m for m in got + got2 if isinstance(m, AudioDelta)]
    assert len(notices) == 2 and all(n.pcm == b"" for n in notices)  # one per item, audio already routed
    texts = [json.loads(m)["type"] for m in got if isinstance(m, str)]
    assert "response.output_audio.delta" not in texts and "response.output_audio_transcript.done" in texts
    assert ring.read().tobytes() == b"".join(first + second)
    assert state is not None and state2 is not None
    assert state[0] == notices[0].item_id and state[2] == notices[0].response_id
    assert state[3] == len(b"".join(first)) and state[4] == 0
    assert state2[0] == notices[1].item_id and state2[3] == len(b"".join(second))
    assert state2[4] == len(b"".join(first)) // 2  # ring position where the second item began


async def test_cut_clears_the_ring_and_drops_the_rest_of_the_response() -> None:
    chunks = _chunks(30, seed=3)
    ring = RingBuffer(48000)
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX, decode_audio=True) as conn:
            conn.set_audio_output(ring)
            await conn.recv()
            playing = asyncio.create_task(
                server.respond(ScriptedResponse(audio=chunks, delta_interval_s=0.01))
            )
            notice = await asyncio.wait_for(conn.recv(), 5)
            while not isinstance(notice, AudioDelta):
                notice = await asyncio.wait_for(conn.recv(), 5)
            await _wait(lambda: ring.written >= 3 * 480)
            ring.read(480)  # the "speaker" played 20 ms
            cut = conn.cut_audio_output()
            assert ring.available == 0
            rest = await _until_done(conn)
            await playing
            assert conn.audio_output_state() is None
    assert cut is not None and cut[0] == notice.item_id and cut[2] == notice.response_id
    assert cut[3] >= 3 * 960 and cut[4] == 0
    assert ring.available == 0 and ring.consumed == 480  # nothing of the cut response landed later
    assert conn.audio_output_dropped > 0
    assert not any(isinstance(m, AudioDelta) for m in rest)


async def test_g711_output_is_decoded_into_the_ring() -> None:
    rng = np.random.default_rng(4)
    codes = [rng.integers(0, 256, 160, dtype=np.uint8).tobytes() for _ in range(4)]
    codes.append(rng.integers(0, 256, 33, dtype=np.uint8).tobytes())  # odd length is fine for G.711
    ring = RingBuffer(8000, dtype="float32")
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX, decode_audio=True) as conn:
            conn.set_audio_output(ring, "pcmu")
            await conn.recv()
            await server.respond(ScriptedResponse(audio=codes))
            await _until_done(conn)
            assert conn.audio_output_state() is not None
            assert conn.audio_output_state()[3] == sum(map(len, codes))  # type: ignore[index]
    want = np.frombuffer(ulaw_decode(b"".join(codes)), np.int16).astype(np.float32) / 32768
    np.testing.assert_array_equal(ring.read(), want)


async def test_input_pump_paces_a_prerecorded_ring_at_real_time() -> None:
    mic = np.random.default_rng(5).integers(-20000, 20000, 4800, dtype=np.int16)  # 200 ms at 24 kHz
    ring = RingBuffer(48000)
    ring.write(mic)
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX) as conn:
            t0 = time.monotonic()
            conn.set_audio_input(ring, chunk_ms=20, pace=True)
            await _wait(lambda: conn.audio_input_sent == 4800)
            elapsed = time.monotonic() - t0
            await _wait(lambda: len(server.input_audio) == mic.nbytes)
        assert server.invalid_frames == []
        appends = server.events("input_audio_buffer.append")
    assert server.input_audio == mic.tobytes()
    assert len(appends) == 10  # 20 ms frames
    # Real-time pacing: 200 ms of audio cannot all be out in the first few ticks (bound kept loose).
    assert elapsed >= 0.1


async def test_input_pump_sends_what_a_live_ring_gets_and_flushes_before_commit() -> None:
    ring = RingBuffer(48000)
    parts = np.array_split(np.arange(-3000, 3000, dtype=np.int16), 7)
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX) as conn:
            conn.set_audio_input(ring, chunk_ms=500)  # a long tick: only the flush can send in time
            await asyncio.sleep(0.05)  # the first (immediate) tick found nothing
            for p in parts:
                ring.write(p)
            assert conn.flush_audio_input() == 6000
            await conn.send_text(json.dumps({"type": "input_audio_buffer.commit"}))
            await server.wait_for("input_audio_buffer.commit")
        kinds = [e["type"] for e in server.events() if e["type"].startswith("input_audio_buffer")]
    assert server.input_audio == np.concatenate(parts).tobytes()
    assert kinds[-1] == "input_audio_buffer.commit" and kinds.count("input_audio_buffer.append") == 1


@pytest.mark.parametrize(("encoding", "encode"), [("pcmu", ulaw_encode), ("pcma", alaw_encode)])
async def test_input_pump_encodes_g711(encoding: str, encode: object) -> None:
    mic = np.random.default_rng(6).integers(-30000, 30000, 1600, dtype=np.int16)  # 200 ms at 8 kHz
    ring = RingBuffer(8000)
    ring.write(mic)
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX) as conn:
            conn.set_audio_input(ring, encoding=encoding, sample_rate=8000)
            await _wait(lambda: conn.audio_input_sent == 1600)
            await _wait(lambda: len(server.input_audio) == 1600)
    assert server.input_audio == encode(mic)  # type: ignore[operator]


async def test_bad_arguments_are_clear_errors() -> None:
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX) as conn:
            with pytest.raises(ValueError, match="unknown audio encoding"):
                conn.set_audio_output(RingBuffer(10), "mp3")
            with pytest.raises(ValueError, match="chunk_ms"):
                conn.set_audio_input(RingBuffer(10), chunk_ms=0)
            with pytest.raises(ValueError, match="sample_rate"):
                conn.set_audio_input(RingBuffer(10), sample_rate=10)
            with pytest.raises(TypeError):
                conn.set_audio_output(b"not a ring")  # type: ignore[arg-type]
            assert conn.audio_output_state() is None and conn.cut_audio_output() is None


async def test_input_pump_ticks_on_a_runtime_started_after_a_shutdown() -> None:
    """Pumps share a ticker task per interval; one that died with a shut-down runtime must be replaced."""
    from fastvoice import _fastvoice

    mic = np.arange(960, dtype=np.int16)
    async with FakeRealtimeServer() as server:
        for round_ in range(2):
            ring = RingBuffer(4800)
            async with transport.connect(server.url + URL_SUFFIX) as conn:
                conn.set_audio_input(ring, chunk_ms=10)
                await asyncio.sleep(0.03)  # the ticker is running and the pump waits on it
                ring.write(mic)  # arrives after the first tick: only a later tick can send it
                await _wait(lambda conn=conn: conn.audio_input_sent == 960)
            if round_ == 0:
                await asyncio.to_thread(_fastvoice.transport_shutdown, 2.0)
        await _wait(lambda: len(server.input_audio) == 2 * mic.nbytes)
    assert server.input_audio == mic.tobytes() * 2


async def test_pump_frames_never_overtake_what_python_queued_before() -> None:
    ring = RingBuffer(24000)
    ring.write(np.ones(4800, np.int16))
    async with FakeRealtimeServer() as server:
        async with transport.connect(server.url + URL_SUFFIX) as conn:
            for _ in range(300):  # queued back to back, without yielding to the loop
                await conn.send_text('{"type":"input_audio_buffer.clear"}')
            conn.set_audio_input(ring)
            await _wait(lambda: conn.audio_input_sent == 4800)
            await _wait(lambda: len(server.input_audio) == 9600)
        kinds = [e["type"] for e in server.events() if e["type"].startswith("input_audio_buffer")]
    assert kinds[:300] == ["input_audio_buffer.clear"] * 300
    assert set(kinds[300:]) == {"input_audio_buffer.append"}


# ---- property test: whatever the server sends, the sink routes exactly the well-formed deltas


def _delta(item: str, payload: str, rid: str = "r1") -> str:
    head = '{"type":"response.output_audio.delta","event_id":"e","response_id":"' + rid
    return head + f'","item_id":"{item}","output_index":0,"content_index":0,"delta":"{payload}"}}'


_frames = st.lists(
    st.one_of(
        # a well-formed delta, sometimes with the JSON-escaped slashes a server may send
        st.tuples(
            st.just("ok"),
            st.sampled_from(["i1", "i2"]),
            st.binary(max_size=300).map(lambda b: b[: len(b) // 2 * 2]),
            st.booleans(),
        ),
        # a malformed one: not base64, or an odd number of PCM16 bytes
        st.tuples(st.just("bad"), st.sampled_from(["i1", "i2"]), st.sampled_from(["@@@@", "AA==", "QUJD="])),
        st.tuples(st.just("other"), st.just(""), st.just("")),
    ),
    max_size=25,
)


@settings(max_examples=20, deadline=None)
@given(_frames)
def test_sink_routes_exactly_the_well_formed_deltas(frames: list[tuple[Any, ...]]) -> None:
    async def main() -> tuple[bytes, list[object]]:
        ring = RingBuffer(48000)
        async with FakeRealtimeServer() as server:
            async with transport.connect(server.url + URL_SUFFIX, decode_audio=True) as conn:
                conn.set_audio_output(ring)
                await conn.recv()  # session.created
                for kind, item, data, *rest in frames:
                    if kind == "ok":
                        b64 = base64.b64encode(data).decode()
                        await server.send_raw(_delta(item, b64.replace("/", "\\/") if rest[0] else b64))
                    elif kind == "bad":
                        await server.send_raw(_delta(item, data))
                    else:
                        await server.send_raw(
                            '{"type":"rate_limits.updated","event_id":"e","rate_limits":[]}'
                        )
                await server.send_raw('{"type":"fv.sentinel"}')
                got: list[object] = []
                while (msg := await asyncio.wait_for(conn.recv(), 5)) != '{"type":"fv.sentinel"}':
                    got.append(msg)
        return ring.read().tobytes(), got

    audio, got = asyncio.run(main())
    good = [(f[1], f[2]) for f in frames if f[0] == "ok"]
    assert audio == b"".join(data for _, data in good)
    starts = [item for k, (item, _) in enumerate(good) if k == 0 or good[k - 1][0] != item]
    notices = [m for m in got if isinstance(m, AudioDelta)]
    assert [n.item_id for n in notices] == starts and all(n.pcm == b"" for n in notices)
    texts = [json.loads(m)["type"] for m in got if isinstance(m, str)]
    want = [
        ("response.output_audio.delta" if f[0] == "bad" else "rate_limits.updated")
        for f in frames
        if f[0] != "ok"
    ]
    assert texts == want  # every frame the sink could not take arrives as the text it was
