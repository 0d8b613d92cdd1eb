"""Test peers for the voice pipeline: real implementations of the public provider interface.

`CountingTTS` speaks each sentence as deterministic PCM chunks and counts every byte the
pipeline pulled from it, so read-ahead and cancellation can be measured from the outside.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from fastvoice.voice import STTModel, TTSModel, VoiceModelProvider

BYTES_PER_S = 48000  # PCM16 mono 24 kHz


def speech(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A tone loud enough to count as speech."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 9000).astype("<i2").tobytes()


class FixedSTT(STTModel):
    def __init__(self, text: str = "tell me a long story") -> None:
        self.text = text

    @property
    def model_name(self) -> str:
        return "fixed-stt"

    async def transcribe(self, audio, settings) -> str:
        return self.text


def sentence_audio(index: int, text: str, chunk: int) -> list[bytes]:
    """The chunks `CountingTTS` yields for a sentence: one chunk per started 15 characters,
    each filled with a value identifying (sentence, chunk), so order and loss are visible."""
    n = max(1, -(-len(text) // 15))
    return [np.full(chunk // 2, (index * 37 + k) % 30000, dtype="<i2").tobytes() for k in range(n)]


class CountingTTS(TTSModel):
    """Counts the bytes pulled from it (`pulled`), chunk by chunk, as the pipeline reads."""

    def __init__(self, chunk: int = 4800, delay: float = 0.0) -> None:
        self.chunk = chunk
        self.delay = delay
        self.pulled = 0
        self.chunks = 0
        self.sentences: list[str] = []
        self.closed = 0  # streams that were closed (finished or abandoned)

    @property
    def model_name(self) -> str:
        return "counting-tts"

    async def run(self, text: str, settings) -> AsyncIterator[bytes]:
        index = len(self.sentences)
        self.sentences.append(text)
        try:
            for piece in sentence_audio(index, text, self.chunk):
                if self.delay:
                    await asyncio.sleep(self.delay)
                else:
                    await asyncio.sleep(0)  # a real model yields to the loop between chunks
                self.pulled += len(piece)
                self.chunks += 1
                yield piece
        finally:
            self.closed += 1


class PeerProvider(VoiceModelProvider):
    def __init__(self, stt: STTModel, tts: TTSModel) -> None:
        self.stt, self.tts = stt, tts

    def get_stt_model(self, name):
        return self.stt

    def get_tts_model(self, name):
        return self.tts


def long_text(n_bytes: int) -> str:
    """About `n_bytes` of prose, sentence after sentence."""
    parts, size, i = [], 0, 0
    while size < n_bytes:
        s = f"This is sentence number {i} of a very long reply that goes on. "
        parts.append(s)
        size += len(s)
        i += 1
    return "".join(parts)
