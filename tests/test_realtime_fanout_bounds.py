"""Subscribers that fall behind: bounded backlogs, exact drop counts told as events, no task after stop()."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer
from test_realtime_session import start

N_EVENTS = 600


async def flood(server: FakeRealtimeServer, n: int = N_EVENTS) -> None:
    """``n`` events the session delivers as they are (unknown server events become raw events)."""
    for i in range(n):
        await server.send_raw(f'{{"type":"future.event","i":{i}}}')


def pump_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "_AsyncSub._pump"]


async def until(cond: Any, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_slow_async_subscriber_is_bounded_and_told_what_it_missed() -> None:
    async with FakeRealtimeServer() as server:
        session = await start(server)
        handled: list[Any] = []

        async def slow(event: Any) -> None:
            handled.append(event)
            await asyncio.sleep(0.002)

        delivered: list[Any] = []
        backlog: list[int] = []

        def fast(event: Any) -> None:  # subscribed second: sees the slow one's backlog after each delivery
            delivered.append(event)
            backlog.append(session.subscriber_backlog(slow))

        session.subscribe(slow, buffer=50)
        session.subscribe(fast)
        await flood(server)
        await until(lambda: sum(isinstance(e, ev.RealtimeRawModelEvent) for e in delivered) == N_EVENTS)
        assert max(backlog) <= 50  # never more than the bound pending
        assert max(backlog) == 50  # ... and it was reached: events were dropped
        await session.stop()
        assert pump_tasks() == []
        dropped = [e for e in handled if isinstance(e, ev.RealtimeEventsDroppedEvent)]
        assert dropped, "the subscriber was told"
        others = [e for e in handled if not isinstance(e, ev.RealtimeEventsDroppedEvent)]
        # Exact: what it handled plus what it was told it missed is everything delivered to it, and the
        # ones it handled are in order (a gap where each events-dropped event stands).
        assert len(others) + sum(d.count for d in dropped) == len(delivered)
        assert dropped[-1].total == sum(d.count for d in dropped)
        index = {id(e): i for i, e in enumerate(delivered)}
        positions = [index[id(e)] for e in others]
        assert positions == sorted(positions)
        assert isinstance(others[-1], ev.RealtimeConnectionEvent) and others[-1].status == "disconnected"


async def test_stop_leaves_no_pump_task_even_for_a_stuck_subscriber() -> None:
    async with FakeRealtimeServer() as server:
        session = await start(server)
        started = asyncio.Event()

        async def stuck(event: Any) -> None:
            started.set()
            await asyncio.sleep(3600)

        session.subscribe(stuck)
        await flood(server, 20)
        await started.wait()
        assert len(pump_tasks()) == 1
        await session.stop()
        assert pump_tasks() == []  # cancelled after the drain grace, not left running forever


async def test_unsubscribed_async_handler_leaves_no_task_after_stop() -> None:
    async with FakeRealtimeServer() as server:
        session = await start(server)

        async def slow(event: Any) -> None:
            await asyncio.sleep(3600)

        session.subscribe(slow)
        await flood(server, 5)
        await until(lambda: len(pump_tasks()) == 1)
        session.unsubscribe(slow)
        await session.stop()
        assert pump_tasks() == []


async def test_default_stream_drops_are_an_event_with_the_exact_count() -> None:
    async with FakeRealtimeServer() as server:
        session = await start(server, event_buffer=20)
        stream = aiter(session)  # the app will iterate, just not yet
        before = len(stream)
        counted: list[Any] = []
        session.subscribe(counted.append)
        await flood(server, 100)
        await until(lambda: len(counted) == 100)
        assert len(stream) == 20
        first = await anext(stream)
        assert isinstance(first, ev.RealtimeEventsDroppedEvent)
        assert first.count == before + 100 - 20 == first.total
        rest = [await anext(stream) for _ in range(20)]
        assert rest == counted[-20:]
        await session.stop()


async def test_full_queue_subscriber_counts_refused_events_and_is_told() -> None:
    async with FakeRealtimeServer() as server:
        session = await start(server)
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=10)
        counted: list[Any] = []
        session.subscribe(queue)
        session.subscribe(counted.append)
        await flood(server, 50)
        await until(lambda: len(counted) == 50)
        assert queue.qsize() == 10
        got = [queue.get_nowait() for _ in range(10)]
        await flood(server, 1)  # room again: the drop notice goes first
        await until(lambda: len(counted) == 51)
        notice = queue.get_nowait()
        assert isinstance(notice, ev.RealtimeEventsDroppedEvent)
        assert notice.count == 40 and got == counted[:10]
        assert queue.get_nowait() is counted[-1]
        await session.stop()


def test_buffer_bounds_are_validated() -> None:
    from fastvoice.realtime._fanout import EventStream, Fanout

    with pytest.raises(ValueError, match="positive"):
        EventStream(0)
    with pytest.raises(ValueError, match="positive"):
        Fanout().subscribe(lambda e: None, 0)
