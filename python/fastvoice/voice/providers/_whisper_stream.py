"""Whisper hearing a turn while it is spoken: partial transcripts, and a final one ready at end of turn
(used by `fastvoice serve` and by the voice pipeline's streamed input).

Whisper is not a streaming model, so a turn is re-decoded as it grows (the audio so far, in the smallest
encoder window that fits, see ``_whisper_io``). Two kinds of decode run, one at a time per turn:

- **partials**, greedy, every ``partial_every_s`` of new audio: the words two consecutive partials agree on
  are stable and go out as ``delta`` text (words are never taken back; a later decode that disagrees only
  delays them);
- a **speculative final**, beam search, as soon as the speaker pauses (the last 120 ms are quiet): when the
  turn then ends with no speech after that point, which is what the end-of-turn silence means, this decode
  *is* the final transcript, so it is ready when ``speech_stopped`` is sent instead of ~150 ms later.

Partials are skipped while the shared engine is busy (all its workers decoding), so many simultaneous
speakers degrade to fewer partials, never to a queue of stale decodes; finals always run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np

from fastvoice import audio
from fastvoice.voice.providers._whisper_io import MAX_SAMPLES, SAMPLE_RATE

if TYPE_CHECKING:
    from fastvoice.voice.providers.whisper import WhisperEngine

__all__ = ["Busy", "WhisperUtterance"]

logger = logging.getLogger("fastvoice")

PAUSE_S = 0.12  # a quiet tail this long starts the speculative final (the default end of turn is 200 ms)
_FRAME = SAMPLE_RATE // 50  # 20 ms
OnPartial = Callable[[str], Awaitable[None]]


class Busy:
    """How many decodes run on an engine now (shared by every session in the process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    def __enter__(self) -> Busy:
        with self._lock:
            self.running += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.running -= 1


def _words(text: str) -> list[str]:
    return text.split()


def _norm(word: str) -> str:
    """A word as the agreement test compares it: case and punctuation aside ("Turn" = "turn,")."""
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


class WhisperUtterance:
    """One turn: ``feed`` PCM16 at ``rate`` from the event loop, then ``finish`` (the transcript) or
    ``abort`` once. ``on_partial(delta)`` is awaited with each newly stable piece of text (with its leading
    space after the first), in order, before ``finish`` returns."""

    def __init__(
        self,
        engine: WhisperEngine,
        rate: int,
        on_partial: OnPartial | None = None,
        *,
        beam_size: int = 5,
        partial_every_s: float = 0.6,
    ) -> None:
        self._engine = engine
        self._busy = engine.busy
        self._resampler = audio.Resampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
        # The streaming resampler's output lags by its filter delay: drop those leading samples so the
        # decoder sees the same time-aligned audio a whole-clip resample gives.
        self._skip = round(self._resampler.delay_ms * SAMPLE_RATE / 1000) if self._resampler else 0
        self._samples = np.zeros(SAMPLE_RATE * 4, dtype=np.float32)  # grows by doubling
        self._n = 0
        self._on_partial = on_partial
        self.sends_deltas = on_partial is not None  # every word of the final goes out as a delta
        self._beam = beam_size
        self._every = int(partial_every_s * SAMPLE_RATE)
        self._last_partial_at = 0
        self._previous: list[str] = []  # the last partial's words
        self._emitted: list[str] = []  # words sent as deltas
        self._task: asyncio.Task[None] | None = None
        self._final: tuple[int, str] | None = None  # (samples covered, beam-search text)
        self._closed = False
        self._power = np.zeros(SAMPLE_RATE * 4 // _FRAME, dtype=np.float32)  # per 20 ms frame
        self._nf = 0  # frames in self._power
        self._peak = 0.0  # the loudest 20 ms frame's mean power so far
        self.decodes = 0  # partial + speculative decodes run (for tests and logs)

    # ---- input
    # ---------------------------------------------------------------------------------------------

    def feed(self, pcm16: bytes) -> None:
        if self._closed or not pcm16:
            return
        if self._resampler is not None:  # PCM16 in, int16 samples out
            self._append(self._resampler.process(pcm16))
        else:
            self._append(np.frombuffer(pcm16, dtype="<i2"))
        self._schedule()

    def _append(self, samples: np.ndarray) -> None:
        x = samples.astype(np.float32) / 32768.0
        if self._skip:
            dropped = min(self._skip, len(x))
            self._skip -= dropped
            x = x[dropped:]
        need = self._n + len(x)
        if need > len(self._samples):
            grown = np.zeros(max(need, 2 * len(self._samples)), dtype=np.float32)
            grown[: self._n] = self._samples[: self._n]
            self._samples = grown
        self._samples[self._n : need] = x
        self._n = need
        # Each completed 20 ms frame's mean power, once: pause checks then read a slice of these.
        frames = self._samples[self._nf * _FRAME : need // _FRAME * _FRAME].reshape(-1, _FRAME)
        if len(frames):
            power = (frames * frames).mean(axis=1)
            end = self._nf + len(power)
            if end > len(self._power):
                grown = np.zeros(max(end, 2 * len(self._power)), dtype=np.float32)
                grown[: self._nf] = self._power[: self._nf]
                self._power = grown
            self._power[self._nf : end] = power
            self._nf = end
            self._peak = max(self._peak, float(power.max()))

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            return
        n = self._n
        if n > MAX_SAMPLES:  # past one window: no more partials, the final cuts it into pieces
            return
        if self._quiet(max(0, n - int(PAUSE_S * SAMPLE_RATE)), n):
            # A pause: decode for the final once per stretch of speech (not again every chunk of silence).
            covered = self._final[0] if self._final is not None else 0
            if n >= SAMPLE_RATE // 2 and not self._quiet(covered, n):
                self._task = asyncio.get_running_loop().create_task(self._decode(n, final=True))
        elif (
            self._on_partial is not None
            and n - self._last_partial_at >= self._every
            and self._busy.running < self._engine.workers
        ):
            self._last_partial_at = n
            self._task = asyncio.get_running_loop().create_task(self._decode(n, final=False))

    def _quiet(self, start: int, end: int) -> bool:
        """No 20 ms frame in [start, end) within 30 dB of the turn's loudest (nor above -50 dBFS).

        Plain frame energy, not the native VAD: that one adapts a noise floor from its first frames, so
        a slice that starts inside a word would teach it that speech is the noise."""
        power = self._power[start // _FRAME : min(self._nf, end // _FRAME)]
        return not len(power) or bool(power.max() < max(1e-5, self._peak * 1e-3))

    # ---- decoding
    # ------------------------------------------------------------------------------------------

    def _run(self, n: int, beam: int) -> str:
        with self._busy:
            return self._engine.transcribe(self._samples[:n].copy(), beam_size=beam)

    async def _decode(self, n: int, *, final: bool) -> None:
        try:
            text = await asyncio.to_thread(self._run, n, self._beam if final else 1)
        except Exception as exc:  # a failed partial loses nothing: the final decode reports errors
            logger.debug("whisper partial decode failed: %r", exc)
            return
        self.decodes += 1
        if final:
            self._final = (n, text)
        await self._publish(_words(text), final=False)  # the speaker may go on after this pause

    async def _publish(self, words: list[str], *, final: bool) -> None:
        """Send the words that became stable: those two consecutive hypotheses agree on, less the last
        one (often a word cut off mid-way), or all of them at the end of the turn."""
        if self._on_partial is None or (self._closed and not final):
            return
        if final:
            stable = words
        else:
            stable = []
            for a, b in zip(self._previous, words[:-1], strict=False):
                if _norm(a) != _norm(b):
                    break
                stable.append(b)
            self._previous = words
        done = len(self._emitted)
        if len(stable) <= done or [_norm(w) for w in stable[:done]] != [_norm(w) for w in self._emitted]:
            return  # nothing new, or a revision of words already sent: leave them, the final is exact
        new = stable[done:]
        self._emitted = stable
        await self._on_partial((" " if done else "") + " ".join(new))

    # ---- end of turn
    # -----------------------------------------------------------------------------------------------

    async def finish(self) -> str:
        """The final transcript of everything fed (the last stable deltas are sent first)."""
        if self._closed:
            raise RuntimeError("utterance already finished")
        self._closed = True
        if self._resampler is not None:
            self._append(self._resampler.flush())
        task = self._task

        async def complete() -> str:
            if task is not None:
                await task
            n = self._n
            final = self._final
            if final is None or not self._quiet(final[0], n):
                text = await asyncio.to_thread(self._run, n, self._beam)
            else:
                text = final[1]  # the speculative final covered all the speech
            await self._publish(_words(text), final=True)
            return text

        # Shielded: a session going away mid-decode must not leave the engine's worker half-used.
        return await asyncio.shield(asyncio.get_running_loop().create_task(complete()))

    async def abort(self) -> None:
        """Drop the turn (cleared buffer, closed session); a decode in flight finishes unobserved."""
        self._closed = True
        self._on_partial = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
