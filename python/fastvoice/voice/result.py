"""The output side of a pipeline run: an async stream of events plus what each turn said."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice.voice._channel import Channel
from fastvoice.voice._readahead import ReadAhead
from fastvoice.voice.events import (
    LifecycleEvent,
    VoiceStreamEvent,
    VoiceStreamEventAudio,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
    VoiceStreamEventTranscript,
)

_log = logging.getLogger("fastvoice")


@dataclass(slots=True)
class Turn:
    """One spoken turn: the user's transcript (None for the greeting), the reply's sentences,
    and timings: `stt_s` the transcription time, `first_audio_s` from the turn's start (the
    transcript being ready) to its first audio event, the latency the workflow and TTS add."""

    transcript: str | None
    sentences: list[str] = field(default_factory=list)
    stt_s: float | None = None
    first_audio_s: float | None = None
    started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def reply(self) -> str:
        return " ".join(self.sentences)


class StreamedAudioResult:
    """Events of one `Pipeline.run`/`run_streamed`, in order, as they happen.

    `async for event in result` yields `VoiceStreamEventAudio`, `VoiceStreamEventLifecycle` and
    `VoiceStreamEventError` and stops after `session_ended`, which always comes. There is one
    consumer: a second iteration continues where the first stopped. `turns` and `errors` fill
    in as the session runs.

    Audio is synthesised only a bounded amount ahead of the consumer
    (`Config.max_buffered_audio_s`). Stop a session early with `await result.aclose()` or
    `async with result:`; cancelling the task that iterates the result stops it too. Either way
    STT, the workflow and TTS stop at once and no task of the session is left behind.
    """

    def __init__(self, dtype: str | None = None, max_buffered_bytes: int = 2**62) -> None:
        self.dtype = dtype
        self.turns: list[Turn] = []
        self.errors: list[BaseException] = []
        self._queue: Channel[VoiceStreamEvent] = Channel()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._readahead = ReadAhead(max_buffered_bytes)
        self._consumers: set[asyncio.Task[Any]] = set()

    # -- producer side (the pipeline) --

    def _start(self, body: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.create_task(body)

    def _session_over(self) -> None:
        for task in self._consumers:
            task.remove_done_callback(self._on_consumer_done)
        self._consumers.clear()

    def _cancel(self, why: str) -> None:
        if self._task is not None and not self._task.done():
            _log.debug("fastvoice voice: stopping the session (%s)", why)
            self._task.cancel()

    def _on_consumer_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._cancel("its consumer task was cancelled")

    def _lifecycle(self, event: LifecycleEvent) -> None:
        self._queue.put_nowait(VoiceStreamEventLifecycle(event))

    def _error(self, error: BaseException) -> None:
        self.errors.append(error)
        self._queue.put_nowait(VoiceStreamEventError(error))

    def _transcript(self, text: str, is_final: bool) -> None:
        self._queue.put_nowait(VoiceStreamEventTranscript(text, is_final))

    def _audio(self, pcm16: bytes) -> None:
        data: Any = pcm16 if self.dtype is None else audio.from_pcm16(pcm16, dtype=self.dtype)
        self._queue.put_nowait(VoiceStreamEventAudio(data))

    # -- consumer side --

    def __aiter__(self) -> AsyncIterator[VoiceStreamEvent]:
        return self._events()

    def stream(self) -> AsyncIterator[VoiceStreamEvent]:
        """The same events as `async for event in result` (openai-agents' spelling)."""
        return self._events()

    async def _events(self) -> AsyncIterator[VoiceStreamEvent]:
        consumer = asyncio.current_task()
        if consumer is not None and consumer not in self._consumers and not self.done:
            # A consumer cancelled while it plays audio (outside this generator) stops the session too.
            self._consumers.add(consumer)
            consumer.add_done_callback(self._on_consumer_done)
        while not self._ended:
            try:
                event = await self._queue.get()
            except asyncio.CancelledError:
                self._cancel("its consumer was cancelled")
                raise
            if isinstance(event, VoiceStreamEventAudio):
                data = event.data
                self._readahead.consumed(len(data) if isinstance(data, bytes) else 2 * len(data))
            elif isinstance(event, VoiceStreamEventLifecycle) and event.event == "session_ended":
                self._ended = True
            yield event

    async def collect_audio(self, raise_errors: bool = True) -> Any:
        """All output audio of the session, once it has ended: PCM16 bytes, or one numpy array
        of the requested dtype. With `raise_errors` (the default) the first error of the
        session is raised instead, so a failure is never mistaken for a short reply."""
        parts = [event.data async for event in self if isinstance(event, VoiceStreamEventAudio)]
        if raise_errors and self.errors:
            raise self.errors[0]
        if self.dtype is None:
            return b"".join(parts)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)

    async def aclose(self) -> None:
        """Stop the session early: STT, the workflow and TTS in flight are cancelled and awaited,
        so no task of the session is left when this returns. Events already produced can still
        be read (they end with `session_ended`). Safe to call more than once."""
        if self._task is not None and not self._task.done():
            self._cancel("aclose()")
            await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> StreamedAudioResult:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def done(self) -> bool:
        """True once the session has ended and every event was produced."""
        return self._task is not None and self._task.done()
