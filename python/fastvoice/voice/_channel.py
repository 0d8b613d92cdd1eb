"""A single-consumer FIFO for one event loop.

The pipeline moves every audio chunk through two hand-offs (TTS task → turn, turn → result);
`asyncio.Queue` costs ~2.5 µs per put/get pair for bookkeeping this use does not need
(bounds, several getters and putters), so this is a deque plus at most one waiting future.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    """Unbounded; `put_nowait` from the loop's thread only; one consumer awaiting `get`."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
