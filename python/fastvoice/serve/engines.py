"""The offline speech engines one server shares between its sessions.

Transcription is streamed while the user speaks when a decoder is free (:mod:`fastvoice.serve.stt`); the pool
below is the batch fallback for the rest (manual commits, more simultaneous speakers than streaming decoders).

PocketSphinx decoders are not thread-safe and cost memory, so the server keeps a small pool (one per core by
default) that sessions borrow per transcription: 20 sessions share 2 decoders instead of building 20, and two
transcriptions still run in parallel on two cores. eSpeak NG is one global instance per process anyway (it
serialises itself); a whole utterance takes a few ms of CPU per second of speech, so one is enough.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import numpy as np

from fastvoice.serve.stt import STT_RATE, DecoderPool, Utterance
from fastvoice.voice.config import STTSettings, TTSSettings
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers.local import LocalSTTModel, LocalTTSModel

__all__ = ["Engines"]

# Process-wide: a decoder takes a second or two to load its model, so servers started one after another
# (tests, restarts in one process) reuse the loaded ones. Each model locks itself, so sharing is safe.
_DECODERS: list[LocalSTTModel] = []
_STREAMS = DecoderPool(0)


class Engines:
    """STT pool + TTS. Create inside the event loop that uses it."""

    def __init__(
        self, stt_pool: int | None = None, words_per_minute: int = 150, stream_decoders: int = 2
    ) -> None:
        size = stt_pool if stt_pool is not None else max(1, os.cpu_count() or 1)
        if size < 1:
            raise ValueError(f"stt_pool must be at least 1, got {size}")
        self._free: asyncio.Queue[LocalSTTModel] = asyncio.Queue()
        while len(_DECODERS) < size:
            _DECODERS.append(LocalSTTModel())
        for model in _DECODERS[:size]:
            self._free.put_nowait(model)
        self.tts = LocalTTSModel(words_per_minute)
        self._stt_settings = STTSettings(language="en")
        self.streaming = stream_decoders > 0
        _STREAMS.max_decoders = max(_STREAMS.max_decoders, stream_decoders)

    def open_utterance(self, rate: int) -> Utterance | None:
        """A streamed transcription for a turn that just started, or None: transcribe it whole at its end."""
        # Narrowband (G.711, 8 kHz) turns go batch: with the live cepstral normalisation of streamed decoding
        # the wideband model misheard the 8 kHz test recording every time ("apple want and what"), while the
        # whole-turn decode, normalised over the full utterance, gets it right.
        return _STREAMS.open(rate) if self.streaming and rate >= STT_RATE else None

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        """The offline transcript of PCM16 mono ``pcm16`` at ``rate`` ("" for silence)."""
        model = await self._free.get()
        try:
            return await model.transcribe(AudioInput(pcm16, "pcm16", sample_rate=rate), self._stt_settings)
        finally:
            self._free.put_nowait(model)

    async def warm(self) -> None:
        """Load every decoder now (by transcribing a short tone) so the first turn is not slow."""
        t = np.arange(8000) / 16000
        tone = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()
        models = [await self._free.get() for _ in range(self._free.qsize())]
        try:
            await asyncio.gather(
                *(
                    m.transcribe(AudioInput(tone, "pcm16", sample_rate=16000), self._stt_settings)
                    for m in models
                ),
                _STREAMS.warm(_STREAMS.max_decoders if self.streaming else 0),
            )
        finally:
            for m in models:
                self._free.put_nowait(m)

    def speak(self, text: str, voice: str, speed: float | None) -> AsyncIterator[bytes]:
        """PCM16 mono 24 kHz chunks of ``text`` spoken with ``voice`` (OpenAI or eSpeak names)."""
        return self.tts.run(text, TTSSettings(voice=voice, speed=speed))
