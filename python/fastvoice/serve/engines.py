"""The offline speech engines one server shares between its sessions.

Two stacks, as in ``voice.providers.local``: ``"local"`` (Whisper tiny.en, a Piper voice; the default when
installed) and ``"light"`` (PocketSphinx, eSpeak NG). Either way a turn is transcribed while the user speaks
when it can be (:meth:`Engines.open_utterance`), and whole at its end otherwise.

Light: PocketSphinx decoders are not thread-safe and cost memory, so the server keeps a small pool (one per
core by default) that sessions borrow per transcription; streamed turns use decoders of their own
(:mod:`fastvoice.serve.stt`). eSpeak NG is one global instance per process (it serialises itself).

Local: one Whisper model per process (CTranslate2 runs two decodes at once on its own threads) and one Piper
voice; every session shares them. Streamed turns: ``WhisperSTTModel.open_turn``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import numpy as np

from fastvoice._cpus import usable_cpus
from fastvoice.serve.stt import STT_RATE, DecoderPool
from fastvoice.voice.config import VOICES, STTSettings, TTSSettings
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers.local import LocalSTTModel, LocalTTSModel, neural_available

__all__ = ["Engines", "TimedWord", "Utterance", "make_engines"]

logger = logging.getLogger("fastvoice.serve")

OnPartial = Callable[[str], Awaitable[None]]
#: A recognised word and when it was said: (word, start, end), in seconds from the start of the audio.
TimedWord = tuple[str, float, float]

# Process-wide: a decoder takes a second or two to load its model, so servers started one after another
# (tests, restarts in one process) reuse the loaded ones. Each model locks itself, so sharing is safe.
_DECODERS: list[LocalSTTModel] = []
_STREAMS = DecoderPool(0)


class Utterance(Protocol):
    """A turn being transcribed as it arrives. `sends_deltas`: its partial-text callback hears every
    word of the final transcript (so the session sends no whole-transcript delta of its own)."""

    sends_deltas: bool

    def feed(self, pcm16: bytes) -> None: ...

    async def finish(self) -> str: ...

    async def abort(self) -> None: ...


def _tone() -> bytes:
    t = np.arange(8000) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()


class Engines:
    """STT + TTS for every session of a server. Create inside the event loop that uses it."""

    kind = "light"
    streaming = False
    turn_detector = "energy"  # the VAD of server_vad / semantic_vad sessions ("auto": Silero when installed)

    def open_utterance(self, rate: int, on_partial: OnPartial | None = None) -> Utterance | None:
        """A streamed transcription for a turn that just started, or None: transcribe it whole at its end.
        ``on_partial(delta)`` hears newly recognised text while the turn goes on (when the engine can)."""
        return None

    async def transcribe(self, pcm16: bytes, rate: int, prompt: str | None = None) -> str:
        """The offline transcript of PCM16 mono ``pcm16`` at ``rate`` ("" for silence). ``prompt``: text
        said before this audio, or spellings to prefer (used by Whisper, ignored by PocketSphinx)."""
        raise NotImplementedError

    async def transcribe_words(
        self, pcm16: bytes, rate: int, prompt: str | None = None
    ) -> tuple[str, list[TimedWord] | None]:
        """:meth:`transcribe`, with each word and its times when the engine reports them (None otherwise):
        PocketSphinx from its segmentation, Whisper from its cross-attention (punctuation attached)."""
        return await self.transcribe(pcm16, rate, prompt), None

    async def warm(self) -> None:
        """Load the models now so the first turn is not slow."""

    def speak(self, text: str, voice: str, speed: float | None) -> AsyncIterator[bytes]:
        """PCM16 mono 24 kHz chunks of ``text`` spoken with ``voice``."""
        raise NotImplementedError


def make_engines(
    kind: str | None = None,
    stt_pool: int | None = None,
    stream_decoders: int = 2,
    words_per_minute: int = 150,
) -> Engines:
    """``kind``: "local", "light" or None (local when its packages are installed, else light)."""
    if kind is None:
        kind = "local" if neural_available() else "light"
        if kind == "light":
            logger.info("the neural engines are not installed (pip install 'fastvoice[local]'); using light")
    if kind == "local":
        return NeuralEngines(stream_decoders)
    if kind == "light":
        return LightEngines(stt_pool, words_per_minute, stream_decoders)
    raise ValueError(f'engines must be "local" or "light", got {kind!r}')


class LightEngines(Engines):
    """PocketSphinx pool + streamed decoders, eSpeak NG."""

    kind = "light"

    def __init__(
        self, stt_pool: int | None = None, words_per_minute: int = 150, stream_decoders: int = 2
    ) -> None:
        size = stt_pool if stt_pool is not None else usable_cpus()
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

    def open_utterance(self, rate: int, on_partial: OnPartial | None = None) -> Utterance | None:
        # Narrowband (G.711, 8 kHz) turns go batch: with the live cepstral normalisation of streamed decoding
        # the wideband model misheard the 8 kHz test recording every time ("apple want and what"), while the
        # whole-turn decode, normalised over the full utterance, gets it right.
        return _STREAMS.open(rate) if self.streaming and rate >= STT_RATE else None

    async def transcribe(self, pcm16: bytes, rate: int, prompt: str | None = None) -> str:
        model = await self._free.get()
        try:
            return await model.transcribe(AudioInput(pcm16, "pcm16", sample_rate=rate), self._stt_settings)
        finally:
            self._free.put_nowait(model)

    async def transcribe_words(
        self, pcm16: bytes, rate: int, prompt: str | None = None
    ) -> tuple[str, list[TimedWord] | None]:
        model = await self._free.get()
        try:
            clip = AudioInput(pcm16, "pcm16", sample_rate=rate)
            return await model.transcribe_words(clip, self._stt_settings)
        finally:
            self._free.put_nowait(model)

    async def warm(self) -> None:
        tone = _tone()
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
        return self.tts.run(text, TTSSettings(voice=voice, speed=speed))


class NeuralEngines(Engines):
    """Whisper tiny.en (streamed with partial transcripts) and a Piper voice, loaded once per process."""

    kind = "local"
    turn_detector = "auto"

    def __init__(self, stream: int = 2) -> None:
        from fastvoice.voice.providers.piper import PiperTTSModel
        from fastvoice.voice.providers.whisper import WhisperSTTModel

        self.stt = WhisperSTTModel()
        self.tts = PiperTTSModel()
        self.streaming = stream > 0
        self._stt_settings = STTSettings(language="en")

    def open_utterance(self, rate: int, on_partial: OnPartial | None = None) -> Utterance | None:
        # None before the model is loaded: this turn goes batch (and loads it).
        return self.stt.open_turn(rate, self._stt_settings, on_partial) if self.streaming else None

    async def transcribe(self, pcm16: bytes, rate: int, prompt: str | None = None) -> str:
        settings = self._stt_settings if not prompt else STTSettings(language="en", prompt=prompt)
        return await self.stt.transcribe(AudioInput(pcm16, "pcm16", sample_rate=rate), settings)

    async def transcribe_words(
        self, pcm16: bytes, rate: int, prompt: str | None = None
    ) -> tuple[str, list[TimedWord] | None]:
        settings = self._stt_settings if not prompt else STTSettings(language="en", prompt=prompt)
        return await self.stt.transcribe_words(AudioInput(pcm16, "pcm16", sample_rate=rate), settings)

    async def warm(self) -> None:
        async def voice() -> None:
            async for _ in self.tts.run("Ready.", TTSSettings()):
                pass

        def vad() -> None:  # Silero's session loads once per process
            from fastvoice.voice._vad import make_turn_detector
            from fastvoice.voice.config import TurnDetection

            make_turn_detector(24000, TurnDetection(engine="auto"))

        await asyncio.gather(self.stt.load(), voice(), asyncio.to_thread(vad))

    def speak(self, text: str, voice: str, speed: float | None) -> AsyncIterator[bytes]:
        # Any voice name the session accepted is spoken: a custom one by the default voice.
        name: Any = voice if voice in VOICES else "alloy"
        return self.tts.run(text, TTSSettings(voice=name, speed=speed))
