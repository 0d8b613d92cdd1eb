"""Streaming transcription while the user speaks, so a reply can start soon after they stop.

Batch PocketSphinx on a finished 2.5 s turn costs 0.3-1 s of CPU *after* the end of speech, and that is the
whole first-audio latency budget. Here the server VAD's ``speech_started`` opens an :class:`Utterance` on
a decoder of its own; the turn's audio is resampled to 16 kHz (one streaming native ``Resampler``) and fed to
the decoder in ~100 ms batches while it arrives, in a worker thread so the event loop never waits; at
``speech_stopped`` only the decoder's final step is left (5-15 ms, see ``DecoderPool._make``).

Decodes run outside the GIL (``providers._sphinx``), so a server with many speakers is CPU-bound. The feeds
of turns still being spoken share a pool of one thread per core; a turn that has ended leaves that queue
and decodes whatever it still has in one step on the default executor, so the turn somebody is waiting on
never waits behind the audio of turns still in progress.

A decoder holds ~95 MB and takes ~1.4 s to load, so they are pooled per process and grown on demand up to
``max_decoders``: a turn that finds none free is not delayed, it simply falls back to batch transcription
(:class:`~fastvoice.serve.engines.Engines`) while a new decoder loads in the background for later turns.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from fastvoice import audio
from fastvoice._cpus import usable_cpus
from fastvoice.voice.providers._sphinx import SphinxDecoder

__all__ = ["DecoderPool", "Utterance"]

STT_RATE = 16000
_FEED_BYTES = STT_RATE * 2 // 10  # hand the decoder 100 ms at a time: fewer thread hops, same result


_FEEDS: ThreadPoolExecutor | None = None
_FEEDS_LOCK = threading.Lock()


def _feeds() -> ThreadPoolExecutor:
    global _FEEDS
    if _FEEDS is not None:  # the per-chunk path takes no lock
        return _FEEDS
    with _FEEDS_LOCK:
        if _FEEDS is None:
            _FEEDS = ThreadPoolExecutor(usable_cpus(), "fastvoice-stt")
        return _FEEDS


class DecoderPool:
    """Process-wide PocketSphinx decoders for streamed utterances (thread-safe)."""

    def __init__(self, max_decoders: int) -> None:
        self.max_decoders = max_decoders
        self._lock = threading.Lock()
        self._free: list[SphinxDecoder] = []
        self._count = 0  # decoders made or being made

    def _make(self) -> None:
        try:
            # fwdflat=False skips the second (flat-lexicon) search pass, which runs at end_utt: the final
            # step drops from 50-95 ms to 5-15 ms, the same words on the shared test recording.
            decoder = SphinxDecoder(samprate=STT_RATE, loglevel="FATAL", fwdflat=False)
        except Exception:  # no engine: every turn falls back to batch, which reports the error itself
            return
        with self._lock:
            self._free.append(decoder)

    def grow(self) -> bool:
        """Reserve a slot for one more decoder; the caller loads it with :meth:`_make` in a thread."""
        with self._lock:
            if self._count >= self.max_decoders:
                return False
            self._count += 1
            return True

    async def warm(self, n: int) -> None:
        tasks = []
        for _ in range(n):
            if self.grow():
                tasks.append(asyncio.to_thread(self._make))
        await asyncio.gather(*tasks)

    def open(self, rate: int) -> Utterance | None:
        """A started utterance on a free decoder, or None (and a new decoder starts loading) if none is."""
        with self._lock:
            decoder = self._free.pop() if self._free else None
        if decoder is None:
            if self.grow():
                asyncio.get_running_loop().run_in_executor(None, self._make)
            return None
        return Utterance(self, decoder, rate)

    def _release(self, decoder: SphinxDecoder | None) -> None:
        """Return a decoder; None drops a broken one (its slot can be refilled)."""
        with self._lock:
            if decoder is None:
                self._count -= 1
            else:
                self._free.append(decoder)


class Utterance:
    """One turn being decoded as it arrives. ``feed`` from the event loop; ``finish`` or ``abort`` once."""

    sends_deltas = False  # the transcript is reported whole at the end

    def __init__(self, pool: DecoderPool, decoder: SphinxDecoder, rate: int) -> None:
        self._pool = pool
        self._decoder = decoder
        self._resampler = audio.Resampler(rate, STT_RATE) if rate != STT_RATE else None
        # The streaming resampler's output lags by its filter delay; drop those leading samples so the decoder
        # sees the same time-aligned audio a whole-clip resample gives. PocketSphinx notices: on 8 kHz G.711
        # input a 4 ms lag turned "have a wonderful day" into "hamilton wandered all day".
        self._skip = (
            2 * round(self._resampler.delay_ms * STT_RATE / 1000) if self._resampler is not None else 0
        )
        self._pending = bytearray()
        self._started = False
        self._worker: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._closed = False

    def feed(self, pcm16: bytes) -> None:
        if self._closed or not pcm16:
            return
        if self._resampler is not None:
            out = self._resampler.process(pcm16)
            self._take(audio.to_pcm16(out) if len(out) else b"")
        else:
            self._pending += pcm16
        if len(self._pending) >= _FEED_BYTES and (self._worker is None or self._worker.done()):
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    def _take(self, pcm16: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(pcm16))
            self._skip -= dropped
            pcm16 = pcm16[dropped:]
        self._pending += pcm16

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self._pending) >= _FEED_BYTES and self._failed is None and not self._closed:
            chunk = bytes(self._pending)
            self._pending.clear()
            try:
                await loop.run_in_executor(_feeds(), self._process, chunk)
            except Exception as exc:
                self._failed = exc

    def _process(self, chunk: bytes) -> None:
        if not self._started:
            self._decoder.start_utt()
            self._started = True
        self._decoder.process_raw(chunk)

    def _end(self, chunk: bytes) -> str:
        """Last batch + final search, then the decoder goes back to the pool (in this thread, so no caller's
        cancellation can hand out a decoder that is still busy). A decoder that failed is dropped."""
        ok = False
        try:
            if chunk:
                self._process(chunk)
            text = ""
            if self._started:
                self._decoder.end_utt()
                self._started = False
                text = (self._decoder.hyp() or "").strip()
            ok = True
            return text
        finally:
            self._pool._release(self._decoder if ok else None)

    async def finish(self) -> str:
        """The transcript of everything fed; raises what the decoder raised."""
        if self._closed:
            raise RuntimeError("utterance already finished")
        self._closed = True
        if self._resampler is not None:
            tail = self._resampler.flush()
            self._take(audio.to_pcm16(tail) if len(tail) else b"")
        worker = self._worker

        async def complete() -> str:
            if worker is not None:
                await worker
            if self._failed is not None:
                self._pool._release(None)
                raise self._failed
            chunk = bytes(self._pending)
            self._pending.clear()
            return await asyncio.to_thread(self._end, chunk)

        # Shielded: the decoder's last steps run to the end even if the session goes away meanwhile.
        return await asyncio.shield(asyncio.get_running_loop().create_task(complete()))

    async def abort(self) -> None:
        """Drop the utterance (cleared buffer, closed session) and return the decoder."""
        self._resampler = None
        self._pending.clear()
        try:
            await self.finish()
        except Exception:  # a failed decoder was already dropped from the pool
            pass
