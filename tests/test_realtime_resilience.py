"""Nothing is lost across a TCP reset: client messages in flight, uncommitted input audio (Python and native
sending), and the received-audio count of native playback.

``ResettingServer`` is FakeRealtimeServer (a real WebSocket peer validating every frame) that aborts its TCP
socket at a chosen client frame without acting on it, like a server or network dying with that frame in
flight; every frame the client wrote after it is lost with the socket.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np
from fastvoice import audio
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import Collector, pcm, start

FAST = rt.RunConfig(reconnect=rt.ReconnectConfig(initial_delay_s=0.02, max_attempts=5))


class ResettingServer(FakeRealtimeServer):
    """Resets the first connection at the first client frame ``reset_at`` accepts (that frame is lost)."""

    def __init__(self, reset_at: Callable[[dict[str, Any]], bool], **kw: Any) -> None:
        super().__init__(**kw)
        self._reset_at: Callable[[dict[str, Any]], bool] | None = reset_at

    async def _on_text(self, conn: Any, raw: str) -> None:
        import json

        if conn.info.index == 0:
            if self._reset_at is None:
                return  # frames read from the socket buffer after the reset die with it
            if self._reset_at(json.loads(raw)):
                self._reset_at = None
                conn.request.transport.abort()
                return
        await super()._on_text(conn, raw)


def nth_append(n: int) -> Callable[[dict[str, Any]], bool]:
    """Reset at the ``n``-th append after the armed moment (``arm()`` sets it going)."""
    state = {"armed": False, "seen": 0}

    def check(frame: dict[str, Any]) -> bool:
        if frame.get("type") != "input_audio_buffer.append" or not state["armed"]:
            return False
        state["seen"] += 1
        return state["seen"] >= n

    check.arm = lambda: state.update(armed=True)  # type: ignore[attr-defined]
    return check


def chunk(i: int, ms: int = 20) -> bytes:
    """20 ms of audio that differs from every other chunk (so order and duplicates show)."""
    return (np.arange(24 * ms, dtype=np.int64) * 7 + i * 1000).astype("<i2").tobytes()


async def until(cond: Any, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def after_reset(server: FakeRealtimeServer) -> bytes:
    """What the new server session holds plus what the old one committed: must be all the app sent."""
    old, new = server.connections[0], server.connections[1]
    return bytes(old.input_audio[: old.committed_audio]) + bytes(new.input_audio)


# ---- item 2: client messages in flight


async def test_item_create_in_flight_is_sent_again_after_the_reset() -> None:
    server = ResettingServer(lambda f: f["type"] == "conversation.item.create")
    async with server:
        server.on_response_create(ScriptedResponse(text="Hello again."))
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        await session.send_message("Are you there?")  # item.create is lost with the socket
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        final = await got.wait(ev.RealtimeTranscriptEvent, is_final=True, text="Hello again.")
        assert final.role == "assistant"
        first = [f.data["type"] for f in server.received if f.connection == 0 and f.data]
        assert "conversation.item.create" not in first  # the server never acted on it
        again = await server.wait_for("conversation.item.create")
        assert again["item"]["content"] == [{"type": "input_text", "text": "Are you there?"}]
        assert again["item"]["id"].startswith("fv_item_")
        users = [h for h in session.history if isinstance(h, ev.UserMessageItem)]
        assert [u.text for u in users] == ["Are you there?"]  # once, not lost and not duplicated
        assert got.of(ev.RealtimeMessageLostEvent) == []
        assert session._unacked.frames == []  # everything acknowledged by the new server
        await session.stop()
        assert server.invalid_frames == []


async def test_response_create_in_flight_is_sent_again() -> None:
    server = ResettingServer(lambda f: f["type"] == "response.create")
    async with server:
        server.on_response_create(ScriptedResponse(text="Answer."))
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        await session.send_message("Question?")
        await got.wait(ev.RealtimeTranscriptEvent, is_final=True, text="Answer.")
        second = [f.data["type"] for f in server.received if f.connection == 1 and f.data]
        # Restored: configuration, the acknowledged message (history), then the lost response.create.
        assert second == ["session.update", "conversation.item.create", "response.create"]
        await session.stop()


async def test_unsafe_messages_in_flight_are_reported_lost() -> None:
    server = ResettingServer(lambda f: f["type"] == "conversation.item.truncate")
    async with server:
        long = ScriptedResponse(audio=[pcm(20)] * 200, delta_interval_s=0.005)
        server.on_response_create(long)
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        await session.send_message("story")
        await got.wait(ev.RealtimeAudioEvent, count=5)
        await session.interrupt()  # truncate + cancel; the server dies at the truncate
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        lost = await got.wait(ev.RealtimeMessageLostEvent)
        await asyncio.sleep(0.05)
        kinds = [e.event_type for e in got.of(ev.RealtimeMessageLostEvent)]
        assert kinds == ["conversation.item.truncate", "response.cancel"]
        assert lost.event["type"] == "conversation.item.truncate" and "text" in lost.reason
        resent = [f.data["type"] for f in server.received if f.connection == 1 and f.data]
        assert "conversation.item.truncate" not in resent and "response.cancel" not in resent
        await session.stop()
        assert server.invalid_frames == []


async def test_response_request_held_behind_the_lost_response_is_made_again() -> None:
    async with FakeRealtimeServer() as server:
        long = ScriptedResponse(audio=[pcm(20)] * 200, delta_interval_s=0.005)
        server.on_response_create([long, ScriptedResponse(text="Second.")])
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        await session.send_message("first")
        await got.wait(ev.RealtimeAudioEvent)
        await session.send_message("second")  # held: a response is active (sent when it is done)
        await server.wait_for("conversation.item.create")
        await server.wait_for("conversation.item.create")
        await server.drop()  # the active response dies with the connection; the held request must not
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        await got.wait(ev.RealtimeTranscriptEvent, is_final=True, text="Second.")
        second = [f.data["type"] for f in server.received if f.connection == 1 and f.data]
        assert second.count("response.create") == 1
        await session.stop()


# ---- item 3: input audio across a reset


async def committed_first(session: rt.Session, got: Collector, sent: list[bytes]) -> None:
    for i in range(10):
        sent.append(chunk(i))
        await session.send_audio(sent[-1])
    await session.commit_audio()
    await got.wait(ev.RealtimeHistoryUpdatedEvent)  # the server's committed + item.added are in


async def test_send_audio_survives_a_reset_with_no_byte_lost() -> None:
    reset = nth_append(3)
    async with ResettingServer(reset) as server:
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        sent: list[bytes] = []
        await committed_first(session, got, sent)
        reset.arm()  # type: ignore[attr-defined]
        for i in range(
            10, 40
        ):  # the reset happens at the 3rd; the rest goes into a dead socket or the outage
            sent.append(chunk(i))
            await session.send_audio(sent[-1])
            await asyncio.sleep(0.002)
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        for i in range(40, 45):
            sent.append(chunk(i))
            await session.send_audio(sent[-1])
        await session.commit_audio()
        await server.wait_for("input_audio_buffer.commit")
        await server.wait_for("input_audio_buffer.commit")
        assert server.connections[0].committed_audio == 10 * 960
        assert after_reset(server) == b"".join(sent)  # every byte exactly once, in order
        assert session.dropped_audio_bytes == 0
        await session.stop()
        assert server.invalid_frames == []


async def test_too_small_buffer_counts_exactly_what_was_lost() -> None:
    reset = nth_append(3)
    # The outage outlasts the sending loop, so the new connection gets only what the buffer kept.
    small = rt.RunConfig(reconnect=rt.ReconnectConfig(initial_delay_s=0.4, max_buffered_audio_bytes=5 * 960))
    async with ResettingServer(reset) as server:
        session = await start(server, config=small)
        got = Collector()
        session.subscribe(got)
        sent: list[bytes] = []
        await committed_first(session, got, sent)
        reset.arm()  # type: ignore[attr-defined]
        for i in range(10, 40):
            sent.append(chunk(i))
            await session.send_audio(sent[-1])
            await asyncio.sleep(0.002)
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        await session.commit_audio()
        await server.wait_for("input_audio_buffer.commit")
        await server.wait_for("input_audio_buffer.commit")
        everything = b"".join(sent)
        arrived = after_reset(server)
        missing = len(everything) - len(arrived)
        assert missing > 0 and session.dropped_audio_bytes == missing
        # What was lost is the oldest uncommitted audio; the newest 5 chunks arrived, in order.
        committed = 10 * 960
        assert arrived == everything[:committed] + everything[committed + missing :]
        assert len(server.connections[1].input_audio) == 5 * 960
        await session.stop()


async def test_native_mic_pump_survives_a_reset_with_no_byte_lost() -> None:
    reset = nth_append(3)
    async with ResettingServer(reset) as server:
        session = await start(server, config=FAST)
        got = Collector()
        session.subscribe(got)
        mic = audio.RingBuffer(24000 * 5)
        session.stream_audio_from(mic)
        written: list[bytes] = []

        def say(i: int) -> None:
            written.append(chunk(i))
            mic.write(np.frombuffer(written[-1], dtype="<i2"))

        for i in range(10):
            say(i)
        await until(lambda: len(server.connections[0].input_audio) == 10 * 960)
        await session.commit_audio()
        await got.wait(ev.RealtimeHistoryUpdatedEvent)
        reset.arm()  # type: ignore[attr-defined]
        for i in range(10, 40):
            say(i)
            await asyncio.sleep(0.004)
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        for i in range(40, 45):
            say(i)
        total = len(b"".join(written))
        await until(lambda: len(after_reset(server)) >= total)
        await session.commit_audio()
        await server.wait_for("input_audio_buffer.commit")
        await server.wait_for("input_audio_buffer.commit")
        assert server.connections[0].committed_audio == 10 * 960
        assert after_reset(server) == b"".join(written)
        assert session.dropped_audio_bytes == 0
        await session.stop()
        assert server.invalid_frames == []


async def test_native_mic_pump_with_a_tiny_buffer_counts_exactly_what_was_lost() -> None:
    reset = nth_append(3)
    tiny = rt.RunConfig(reconnect=rt.ReconnectConfig(initial_delay_s=0.02, max_buffered_audio_bytes=960))
    async with ResettingServer(reset) as server:
        session = await start(server, config=tiny)
        got = Collector()
        session.subscribe(got)
        mic = audio.RingBuffer(24000 * 5)
        session.stream_audio_from(mic)
        written: list[bytes] = []
        for i in range(10):
            written.append(chunk(i))
        mic.write(np.frombuffer(b"".join(written), dtype="<i2"))
        await until(lambda: len(server.connections[0].input_audio) == 10 * 960)
        await session.commit_audio()
        await got.wait(ev.RealtimeHistoryUpdatedEvent)
        reset.arm()  # type: ignore[attr-defined]
        for i in range(10, 20):  # one write: the pump sends it in one tick, more than the buffer holds
            written.append(chunk(i))
        mic.write(np.frombuffer(b"".join(written[10:]), dtype="<i2"))
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        await session.commit_audio()
        await server.wait_for("input_audio_buffer.commit")
        await server.wait_for("input_audio_buffer.commit")
        everything, arrived = b"".join(written), after_reset(server)
        missing = len(everything) - len(arrived)
        assert missing > 0 and session.dropped_audio_bytes == missing
        assert arrived == everything[: 10 * 960] + everything[10 * 960 + missing :]
        await session.stop()


# ---- item 5: received audio counted the same by both playback paths


def deltas_sent(server: FakeRealtimeServer) -> int:
    kinds = ("response.output_audio.delta",)
    return sum(len(base64.b64decode(e["delta"])) for e in server.sent if e["type"] in kinds)


async def received_through(native: bool) -> tuple[int, int]:
    chunks = [pcm(20, 200.0 + 10 * i) for i in range(12)]
    long = ScriptedResponse(audio=[pcm(20)] * 100, delta_interval_s=0.005)
    async with FakeRealtimeServer() as server:
        server.on_response_create([ScriptedResponse(audio=chunks), long])
        session = await start(server, config=FAST)
        speaker = audio.RingBuffer(24000 * 10)
        session.playback.use_ring_buffer(speaker, audio_events=not native)
        got = Collector()
        session.subscribe(got)
        await session.send_message("one")
        await got.wait(ev.RealtimeAgentEndEvent)
        await server.drop()  # the count survives a reconnect (a new connection, a new native sink)
        await got.wait(ev.RealtimeConnectionEvent, status="connected", attempt=1)
        await session.send_message("two")
        await got.wait(ev.RealtimeAgentStateEvent, state="speaking", count=2)
        await asyncio.sleep(0.1)
        await session.interrupt()  # deltas still arriving for the cut response count too (both paths)
        await got.wait(ev.RealtimeAgentEndEvent, count=2)
        await server.wait_idle()
        await asyncio.sleep(0.05)
        received, sent = session.audio_bytes_received, deltas_sent(server)
        await session.stop()
        return received, sent


async def test_native_playback_counts_received_audio_like_the_python_path() -> None:
    py_received, py_sent = await received_through(native=False)
    native_received, native_sent = await received_through(native=True)
    assert py_received == py_sent
    assert native_received == native_sent  # was 0 with audio_events=False
    assert native_received > 12 * 960
