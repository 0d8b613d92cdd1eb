"""Bounded TTS read-ahead: how much synthesised audio may wait for the result's consumer.

Every byte a TTS stream yields is counted from the moment it is pulled until the consumer takes
its `VoiceStreamEventAudio` off the result. A synthesis task asks `acquire` before pulling its
next chunk, so while the buffer is full the TTS stream is simply not pulled (backpressure all
the way to the synthesiser; for the OpenAI provider the HTTP body stops being read).

Two rules keep it from deadlocking while sentences are synthesised concurrently: sentences after
the one playing ("head") may together hold at most half of the budget, and the head may always
pull when the consumer has nothing left to play. Pulls in flight reserve the largest chunk seen,
so the buffer overshoots the limit by at most about one chunk.
"""

from __future__ import annotations

import asyncio


class Segment:
    """The audio of one sentence, between its synthesis task and the turn that emits it."""

    __slots__ = ("buffered", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.buffered = 0  # bytes pulled from TTS, not yet moved to the result


class ReadAhead:
    """The shared byte budget of one `StreamedAudioResult` (all its turns)."""

    __slots__ = ("_waiters", "head", "in_flight", "largest", "limit", "peak", "queued", "total")

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.total = 0  # bytes pulled and not yet taken by the consumer
        self.queued = 0  # of which already in the result's event queue
        self.in_flight = 0  # pulls started and not finished
        self.largest = 0  # the largest chunk seen: what a pull in flight may add
        self.peak = 0  # the most `total` ever was (for tests and debug logs)
        self.head: Segment | None = None  # the segment whose audio is being emitted
        self._waiters: list[asyncio.Future[None]] = []

    def _may_pull(self, seg: Segment) -> bool:
        if seg is self.head and self.queued + seg.buffered == 0:
            return True  # the consumer would starve: never hold back what plays next
        if self.total + self.in_flight * self.largest >= self.limit:
            return False
        if seg is not self.head:
            ahead = self.total - self.queued - (self.head.buffered if self.head is not None else 0)
            return ahead < self.limit // 2
        return True

    async def acquire(self, seg: Segment) -> None:
        """Wait until `seg` may pull one more chunk; the caller then must call `pulled`."""
        while not self._may_pull(seg):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1

    def pulled(self, seg: Segment, n: int) -> None:
        """A pull of `seg` finished with `n` bytes (0: the stream ended or failed)."""
        self.in_flight -= 1
        seg.buffered += n
        self.total += n
        self.largest = max(self.largest, n)
        self.peak = max(self.peak, self.total)
        self._wake()

    def moved(self, seg: Segment, taken: int, emitted: int) -> None:
        """`taken` bytes left `seg`'s queue; `emitted` bytes went into the result as audio
        (they differ by an odd byte carried to the next chunk)."""
        seg.buffered -= taken
        self.queued += emitted
        self.total += emitted - taken
        self._wake()

    def consumed(self, n: int) -> None:
        """The consumer took `n` bytes of audio off the result."""
        self.queued -= n
        self.total -= n
        self._wake()

    def set_head(self, seg: Segment | None) -> None:
        self.head = seg
        self._wake()

    def discard(self, seg: Segment) -> None:
        """Forget the bytes of a segment that will never be emitted (an error or cancellation)."""
        self.total -= seg.buffered
        seg.buffered = 0
        if self.head is seg:
            self.head = None
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
