"""The output side of a pipeline run: an async stream of events plus what each turn said."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice.voice._channel import Channel
from fastvoice.voice.events import (
    LifecycleEvent,
    VoiceStreamEvent,
    VoiceStreamEventAudio,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
)


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
    """

    def __init__(self, dtype: str | None = None) -> None:
        self.dtype = dtype
        self.turns: list[Turn] = []
        self.errors: list[BaseException] = []
        self._queue: Channel[VoiceStreamEvent] = Channel()
        self._task: asyncio.Task[None] | None = None
        self._ended = False

    # -- producer side (the pipeline) --

    def _start(self, body: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.create_task(body)

    def _lifecycle(self, event: LifecycleEvent) -> None:
        self._queue.put_nowait(VoiceStreamEventLifecycle(event))

    def _error(self, error: BaseException) -> None:
        self.errors.append(error)
        self._queue.put_nowait(VoiceStreamEventError(error))

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
        while not self._ended:
            event = await self._queue.get()
            if isinstance(event, VoiceStreamEventLifecycle) and event.event == "session_ended":
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
        """Stop the session early (cancels STT/TTS work in flight)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def done(self) -> bool:
        """True once the session has ended and every event was produced."""
        return self._task is not None and self._task.done()
