"""Helpers shared by the Piper TTS tests: transcribing speech back, and synthesising a text."""

from __future__ import annotations

import re

from fastvoice.voice import AudioInput, STTSettings, TTSSettings
from fastvoice.voice.events import ProviderUnavailableError
from fastvoice.voice.providers import STTModel, TTSModel
from fastvoice.voice.providers.local import LocalSTTModel


class Transcriber:
    """Whisper tiny.en (fastvoice's offline STT: it hears synthetic speech exactly) if its packages are
    installed, else PocketSphinx."""

    def __init__(self) -> None:
        self.stt: STTModel
        try:
            from fastvoice.voice.providers.whisper import WhisperSTTModel

            self.stt = WhisperSTTModel()
            self.name = "whisper-tiny.en"
        except ProviderUnavailableError:
            self.stt = LocalSTTModel()
            self.name = "pocketsphinx"

    async def __call__(self, pcm24k: bytes) -> str:
        return await self.stt.transcribe(AudioInput(pcm24k, sample_rate=24000), STTSettings())


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def synth(tts: TTSModel, text: str, **settings: object) -> bytes:
    return b"".join([c async for c in tts.run(text, TTSSettings(**settings))])  # type: ignore[arg-type]


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / 24000
