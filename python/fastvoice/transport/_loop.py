"""One wake-up channel per asyncio loop, shared by all connections on that loop.

The Rust side makes an fd readable (an eventfd on Linux: one counter add, cheaper than a byte through
a socketpair) when any armed connection of this loop has news; the loop's selector sees the fd
readable and calls `_on_wake`, which asks Rust for the ids with news and resolves their futures. So
the tokio thread never needs the GIL, and a burst of messages on many connections costs one loop
wake-up. Kept for benchmarking only: `FASTVOICE_TRANSPORT_WAKE=socketpair` (the previous fd) and
`FASTVOICE_TRANSPORT_WAKE=call_soon` (`loop.call_soon_threadsafe` from the tokio thread, taking the
GIL).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import weakref
from collections.abc import Callable

from fastvoice import _fastvoice

__all__ = ["LoopWaker", "loop_waker"]


class LoopWaker:
    __slots__ = ("__weakref__", "_loop", "_native", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # One future per id in the common case; a list when several tasks wait on one connection.
        self._waiters: dict[int, asyncio.Future[None] | list[asyncio.Future[None]]] = {}
        if os.environ.get("FASTVOICE_TRANSPORT_WAKE") == "call_soon":
            self._native = _fastvoice.TransportLoopWaker(functools.partial(_call_soon, loop, self._on_wake))
        else:
            self._native = _fastvoice.TransportLoopWaker()
            fd = self._native.fileno()
            assert fd is not None
            loop.add_reader(fd, self._on_wake)

    @property
    def native(self) -> _fastvoice.TransportLoopWaker:
        return self._native

    def _on_wake(self) -> None:
        waiters = self._waiters
        for ident in self._native.drain():
            entry = waiters.pop(ident, None)
            if entry is None:
                continue
            if isinstance(entry, list):
                for fut in entry:
                    if not fut.done():
                        fut.set_result(None)
            elif not entry.done():
                entry.set_result(None)

    def wait(self, ident: int) -> asyncio.Future[None]:
        """A future resolved when connection `ident` is signalled (the caller armed it just
        before). A plain function, not a coroutine: this is on every receive that has to wait.
        Cancelled futures are dropped at the next signal for the id, or replaced right here."""
        loop = self._loop
        if asyncio.get_running_loop() is not loop:
            raise RuntimeError("a fastvoice transport object was used from a different event loop")
        fut: asyncio.Future[None] = loop.create_future()
        entry = self._waiters.get(ident)
        if entry is None or (not isinstance(entry, list) and entry.done()):
            self._waiters[ident] = fut
        elif isinstance(entry, list):
            entry[:] = [f for f in entry if not f.done()]
            entry.append(fut)
        else:
            self._waiters[ident] = [entry, fut]
        return fut


def _call_soon(loop: asyncio.AbstractEventLoop, cb: Callable[[], None]) -> None:
    # Called from the tokio thread; the loop may have finished (asyncio.run returned) while a
    # connection was still closing: then there is nobody left to wake.
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(cb)


_WAKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWaker] = weakref.WeakKeyDictionary()


def loop_waker() -> LoopWaker:
    """The waker of the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    waker = _WAKERS.get(loop)
    if waker is None:
        waker = LoopWaker(loop)
        _WAKERS[loop] = waker
    return waker


def _shutdown() -> None:
    _fastvoice.transport_shutdown(1.0)


atexit.register(_shutdown)
