"""Delivering session events to subscribers: one pass per batch, the same event objects to everyone.

The reader task hands each batch of server frames to :meth:`Fanout.deliver` as one list. Every subscriber
receives those very objects (events are frozen, so sharing is safe): a queue gets ``put_nowait`` per event, a
sync callable is called inline, an async callable gets its own pump task (so a slow handler delays only
itself and sees events in order), and ``async for`` reads a :class:`EventStream`, which wakes its reader once
per batch rather than once per event.

Nothing grows without bound: the backlog of an async handler and of ``async for`` holds at most ``maxlen``
events (``subscriber_buffer`` / ``event_buffer`` of the session; the oldest go first), and a full
``asyncio.Queue`` refuses events. Every drop is counted and told to that subscriber, in order, as one
:class:`~fastvoice.realtime.events.RealtimeEventsDroppedEvent` where the gap is. When the session ends, pump
tasks get :data:`DRAIN_GRACE_S` to handle what they hold (the final ``disconnected`` event included), then are
cancelled: no task outlives the session.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

from fastvoice.realtime.events import RealtimeEvent, RealtimeEventsDroppedEvent

__all__ = ["DEFAULT_SUBSCRIBER_BUFFER", "DRAIN_GRACE_S", "EventStream", "Fanout", "Subscriber"]

DEFAULT_SUBSCRIBER_BUFFER = 4096
"""Events an async subscriber may have pending before the oldest are dropped (about 80 s of audio chunks)."""

DRAIN_GRACE_S = 1.0
"""How long ``stop()`` lets async subscribers handle their backlog before cancelling their pump tasks."""

logger = logging.getLogger("fastvoice")

Subscriber: TypeAlias = (
    Callable[[RealtimeEvent], object] | Callable[[RealtimeEvent], Awaitable[object]] | asyncio.Queue[Any]
)
"""What :meth:`Session.subscribe` accepts: a sync or async callable of one event, or an ``asyncio.Queue``."""

_END = object()


class EventStream:
    """An async iterator over session events, buffered from the moment it is created.

    ``maxlen`` bounds the backlog (oldest events are dropped and counted in ``dropped``, with one warning) so
    a session nobody iterates cannot grow without limit; the reader is told with a
    :class:`~fastvoice.realtime.events.RealtimeEventsDroppedEvent` before the first event after the gap.
    """

    __slots__ = ("_buf", "_ended", "_unreported", "_waiter", "dropped", "maxlen")

    def __init__(self, maxlen: int = 4096) -> None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"an event buffer bound must be a positive int, got {maxlen!r}")
        self._buf: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self.maxlen = maxlen
        self.dropped = 0
        self._unreported = 0

    def __len__(self) -> int:
        """Events waiting to be read (never more than ``maxlen``)."""
        return len(self._buf)

    def deliver(self, events: list[RealtimeEvent]) -> None:
        buf = self._buf
        buf.extend(events)
        over = len(buf) - self.maxlen
        if over > 0:
            if self.dropped == 0:
                logger.warning("fastvoice session: event stream not read fast enough, dropping oldest events")
            self.dropped += over
            self._unreported += over
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
            if self._unreported:
                count, self._unreported = self._unreported, 0
                return RealtimeEventsDroppedEvent(count=count, total=self.dropped)
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
    """An application's queue: its own ``maxsize`` is the bound; refused events are counted and reported
    (as one events-dropped event) as soon as the queue has room again."""

    __slots__ = ("dropped", "key", "queue", "unreported")

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self.key: object = queue
        self.queue = queue
        self.dropped = 0
        self.unreported = 0

    def deliver(self, events: list[RealtimeEvent]) -> None:
        put = self.queue.put_nowait
        for e in events:
            try:
                if self.unreported:
                    put(RealtimeEventsDroppedEvent(count=self.unreported, total=self.dropped))
                    self.unreported = 0
                put(e)
            except asyncio.QueueFull:
                if self.dropped == 0:
                    logger.warning("fastvoice session: subscriber queue is full, dropping events")
                self.dropped += 1
                self.unreported += 1

    def __len__(self) -> int:
        return self.queue.qsize()

    def close(self) -> None:
        return None


class _SyncSub:
    __slots__ = ("fn", "key")

    def __init__(self, fn: Callable[[RealtimeEvent], object]) -> None:
        self.key: object = fn
        self.fn = fn

    def __len__(self) -> int:
        return 0

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

    def __init__(self, fn: Callable[[RealtimeEvent], Awaitable[object]], maxlen: int) -> None:
        self.key: object = fn
        self.fn = fn
        self.stream = EventStream(maxlen)
        self.task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.stream)

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


def _make_sub(handler: Subscriber, maxlen: int) -> _Sub:
    if isinstance(handler, asyncio.Queue):
        return _QueueSub(handler)
    if not callable(handler):
        raise TypeError(f"subscribe() takes a callable or an asyncio.Queue, got {type(handler).__name__}")
    target = getattr(handler, "__call__", handler)  # noqa: B004 - async __call__ objects count as async
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(target):
        return _AsyncSub(handler, maxlen)  # type: ignore[arg-type]
    return _SyncSub(handler)


class Fanout:
    """The subscriber list; ``subscribe`` is idempotent (same handler twice = one subscription)."""

    __slots__ = ("_retired", "_subs")

    def __init__(self) -> None:
        # A tuple swapped on change: delivering never sees a list mutated by a handler that unsubscribes.
        self._subs: tuple[_Sub | EventStream, ...] = ()
        self._retired: list[_AsyncSub] = []  # unsubscribed, still draining: drain() waits for them too

    def subscribe(self, handler: Subscriber, maxlen: int = DEFAULT_SUBSCRIBER_BUFFER) -> bool:
        if any(getattr(s, "key", None) is handler for s in self._subs):
            return False
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"buffer must be a positive int, got {maxlen!r}")
        self._subs = (*self._subs, _make_sub(handler, maxlen))
        return True

    def backlog(self, handler: Subscriber) -> int:
        """Events delivered to ``handler`` and not handled yet (0 for sync handlers and unknown ones)."""
        for s in self._subs:
            if getattr(s, "key", None) is handler:
                return len(s)
        return 0

    def unsubscribe(self, handler: Subscriber) -> bool:
        keep = tuple(s for s in self._subs if getattr(s, "key", None) is not handler)
        removed = [s for s in self._subs if getattr(s, "key", None) is handler]
        self._subs = keep
        for s in removed:
            if isinstance(s, EventStream):
                s.end()
            else:
                s.close()
            if isinstance(s, _AsyncSub) and s.task is not None:
                self._retired = [r for r in self._retired if r.task is not None and not r.task.done()]
                self._retired.append(s)
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
        subs = [*self._subs, *self._retired]
        return [s.task for s in subs if isinstance(s, _AsyncSub) and s.task is not None]

    async def drain(self, grace: float = DRAIN_GRACE_S) -> None:
        """After :meth:`close`: give the pump tasks ``grace`` seconds to finish their backlog, then cancel
        them; returns when none is left (except the calling task, if it is one: it ends when it returns)."""
        current = asyncio.current_task()
        tasks = [t for t in self.pump_tasks() if t is not current and not t.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
