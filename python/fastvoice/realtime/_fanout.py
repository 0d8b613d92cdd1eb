"""Delivering session events to subscribers: one pass per batch, the same event objects to everyone.

The reader task hands each batch of server frames to :meth:`Fanout.deliver` as one list. Every subscriber
receives those very objects (events are frozen, so sharing is safe): a queue gets ``put_nowait`` per event, a
sync callable is called inline, an async callable gets its own pump task (so a slow handler delays only
itself and sees events in order), and ``async for`` reads a :class:`EventStream`, which wakes its reader once
per batch rather than once per event.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

from fastvoice.realtime.events import RealtimeEvent

__all__ = ["EventStream", "Fanout", "Subscriber"]

logger = logging.getLogger("fastvoice")

Subscriber: TypeAlias = (
    Callable[[RealtimeEvent], object] | Callable[[RealtimeEvent], Awaitable[object]] | asyncio.Queue[Any]
)
"""What :meth:`Session.subscribe` accepts: a sync or async callable of one event, or an ``asyncio.Queue``."""

_END = object()


class EventStream:
    """An async iterator over session events, buffered from the moment it is created.

    ``maxlen`` bounds the backlog (oldest events are dropped and counted in ``dropped``, with one warning) so
    a session nobody iterates cannot grow without limit.
    """

    __slots__ = ("_buf", "_ended", "_waiter", "dropped", "maxlen")

    def __init__(self, maxlen: int = 4096) -> None:
        self._buf: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self.maxlen = maxlen
        self.dropped = 0

    def deliver(self, events: list[RealtimeEvent]) -> None:
        buf = self._buf
        buf.extend(events)
        over = len(buf) - self.maxlen
        if over > 0:
            if self.dropped == 0:
                logger.warning("fastvoice session: event stream not read fast enough, dropping oldest events")
            self.dropped += over
            for _ in range(over):
                buf.popleft()
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> RealtimeEvent:
        while True:
            if self._buf:
                event: RealtimeEvent = self._buf.popleft()
                return event
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class _QueueSub:
    __slots__ = ("key", "queue")

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self.key: object = queue
        self.queue = queue

    def deliver(self, events: list[RealtimeEvent]) -> None:
        put = self.queue.put_nowait
        for e in events:
            try:
                put(e)
            except asyncio.QueueFull:
                logger.warning("fastvoice session: subscriber queue is full, event %s dropped", e.type)

    def close(self) -> None:
        return None


class _SyncSub:
    __slots__ = ("fn", "key")

    def __init__(self, fn: Callable[[RealtimeEvent], object]) -> None:
        self.key: object = fn
        self.fn = fn

    def deliver(self, events: list[RealtimeEvent]) -> None:
        fn = self.fn
        for e in events:
            try:
                fn(e)
            except Exception:
                logger.exception("fastvoice session: subscriber %r failed on a %s event", fn, e.type)

    def close(self) -> None:
        return None


class _AsyncSub:
    """An async handler with its own ordered backlog and pump task (started lazily on first events)."""

    __slots__ = ("fn", "key", "stream", "task")

    def __init__(self, fn: Callable[[RealtimeEvent], Awaitable[object]]) -> None:
        self.key: object = fn
        self.fn = fn
        self.stream = EventStream(maxlen=1 << 20)
        self.task: asyncio.Task[None] | None = None

    def deliver(self, events: list[RealtimeEvent]) -> None:
        self.stream.deliver(events)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        async for e in self.stream:
            try:
                await self.fn(e)
            except Exception:
                logger.exception("fastvoice session: subscriber %r failed on a %s event", self.fn, e.type)

    def close(self) -> None:
        # Let the pump drain what it already has, then finish.
        self.stream.end()


_Sub: TypeAlias = _QueueSub | _SyncSub | _AsyncSub


def _make_sub(handler: Subscriber) -> _Sub:
    if isinstance(handler, asyncio.Queue):
        return _QueueSub(handler)
    if not callable(handler):
        raise TypeError(f"subscribe() takes a callable or an asyncio.Queue, got {type(handler).__name__}")
    target = getattr(handler, "__call__", handler)  # noqa: B004 - async __call__ objects count as async
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(target):
        return _AsyncSub(handler)  # type: ignore[arg-type]
    return _SyncSub(handler)


class Fanout:
    """The subscriber list; ``subscribe`` is idempotent (same handler twice = one subscription)."""

    __slots__ = ("_subs",)

    def __init__(self) -> None:
        # A tuple swapped on change: delivering never sees a list mutated by a handler that unsubscribes.
        self._subs: tuple[_Sub | EventStream, ...] = ()

    def subscribe(self, handler: Subscriber) -> bool:
        if any(getattr(s, "key", None) is handler for s in self._subs):
            return False
        self._subs = (*self._subs, _make_sub(handler))
        return True

    def unsubscribe(self, handler: Subscriber) -> bool:
        keep = tuple(s for s in self._subs if getattr(s, "key", None) is not handler)
        removed = [s for s in self._subs if getattr(s, "key", None) is handler]
        self._subs = keep
        for s in removed:
            if isinstance(s, EventStream):
                s.end()
            else:
                s.close()
        return bool(removed)

    def add_stream(self, stream: EventStream) -> None:
        self._subs = (*self._subs, stream)

    def remove_stream(self, stream: EventStream) -> None:
        self._subs = tuple(s for s in self._subs if s is not stream)

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def deliver(self, events: list[RealtimeEvent]) -> None:
        for s in self._subs:
            s.deliver(events)

    def close(self) -> None:
        for s in self._subs:
            if isinstance(s, EventStream):
                s.end()
            else:
                s.close()

    def pump_tasks(self) -> Iterable[asyncio.Task[None]]:
        return [s.task for s in self._subs if isinstance(s, _AsyncSub) and s.task is not None]
