"""Audio going into a pipeline: one clip (`AudioInput`) or a live stream (`StreamedAudioInput`).

Both normalise to PCM16 mono bytes at their own sample rate; rate conversion is the STT
model's business (each wants its own rate), so nothing is resampled twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

import numpy as np

from fastvoice import audio
from fastvoice._fastvoice import AudioFormatError

AudioFormat = Literal["wav", "pcm16"]

#: Default rate of raw PCM16 input, the Realtime API's and OpenAI TTS's rate.
DEFAULT_SAMPLE_RATE = 24000
_MAX_RATE = 384000


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise AudioFormatError(f"sample_rate must be an int, got {type(sample_rate).__name__}")
    if not 1 <= int(sample_rate) <= _MAX_RATE:
        raise AudioFormatError(f"sample_rate must be between 1 and {_MAX_RATE}, got {sample_rate}")
    return int(sample_rate)


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
        raise AudioFormatError(f"channels must be an int between 1 and 64, got {channels!r}")
    return channels


def is_wav(data: Any) -> bool:
    """True when `data` starts like a RIFF/WAVE (or RF64) file."""
    if isinstance(data, np.ndarray):
        return False
    try:
        head = bytes(memoryview(data)[:12])
    except TypeError:
        return False
    return len(head) == 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


def _pcm16_mono(data: Any, channels: int) -> bytes:
    """Any accepted sample container -> PCM16 mono bytes (floats by the pcm.rs rule)."""
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "if" or data.dtype == np.int8:
            raise AudioFormatError(f"audio arrays must be int16 or float, got {data.dtype}")
        if data.dtype.kind == "i" and data.dtype != np.int16:
            raise AudioFormatError(f"integer audio arrays must be int16, got {data.dtype}")
        data = np.ascontiguousarray(data).reshape(-1)
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise AudioFormatError(
            f"audio must be bytes, bytearray, memoryview or a numpy array, got {type(data).__name__}"
        )
    pcm = bytes(audio.to_pcm16(data))
    if channels > 1:
        pcm = bytes(audio.to_mono(pcm, channels))
    return pcm


class AudioInput:
    """One clip of audio for `Pipeline.run`.

    `data` is WAV file bytes or raw samples (PCM16 bytes-like, or a numpy int16/float array).
    `format=None` detects WAV by its header and treats anything else as PCM16 at
    `sample_rate` with `channels` interleaved channels; a WAV file's own header wins over
    both. Decoding is deferred to first use (`pcm16`, `sample_rate`), so a corrupt file
    surfaces as a `VoiceStreamEventError` from the pipeline rather than at construction;
    call `decode()` to check eagerly.
    """

    __slots__ = ("_channels", "_data", "_decoded", "_format", "_rate")

    def __init__(
        self,
        data: Any,
        format: AudioFormat | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        channels: int = 1,
    ) -> None:
        if format not in (None, "wav", "pcm16"):
            raise ValueError(f'format must be "wav", "pcm16" or None (auto-detect), got {format!r}')
        self._data = data
        self._format: AudioFormat = format or ("wav" if is_wav(data) else "pcm16")
        self._rate = _check_rate(sample_rate)
        self._channels = _check_channels(channels)
        self._decoded: tuple[bytes, int] | None = None

    @property
    def format(self) -> AudioFormat:
        """The format used: the one given, or the detected one."""
        return self._format

    def decode(self) -> tuple[bytes, int]:
        """`(pcm16_mono_bytes, sample_rate)`, decoded once and cached.

        Raises `AudioFormatError` for a corrupt WAV or malformed samples.
        """
        if self._decoded is None:
            if self._format == "wav":
                if isinstance(self._data, np.ndarray) and self._data.dtype != np.uint8:
                    raise AudioFormatError("WAV data must be bytes-like, not a numpy array of samples")
                wav = audio.wav_decode(self._data)
                pcm = bytes(wav.pcm16)
                if wav.channels > 1:
                    pcm = bytes(audio.to_mono(pcm, wav.channels))
                self._decoded = (pcm, int(wav.sample_rate))
            else:
                self._decoded = (_pcm16_mono(self._data, self._channels), self._rate)
        return self._decoded

    @property
    def pcm16(self) -> bytes:
        """The audio as PCM16 little-endian mono bytes."""
        return self.decode()[0]

    @property
    def sample_rate(self) -> int:
        """The audio's sample rate (from the WAV header for WAV input)."""
        return self.decode()[1]

    @property
    def duration_s(self) -> float:
        pcm, rate = self.decode()
        return len(pcm) / 2 / rate

    def __repr__(self) -> str:
        state = f"{self.duration_s:.3f} s at {self.sample_rate} Hz" if self._decoded else "not decoded"
        return f"AudioInput(format={self._format!r}, {state})"


class StreamedAudioInput:
    """Live audio for `Pipeline.run_streamed`: `await push(chunk)` as it arrives, then
    `await close()`.

    Chunks are PCM16 bytes-like or numpy int16/float arrays at `sample_rate` with `channels`
    interleaved channels, of any length. Each is converted (and checked) when pushed, so a
    bad chunk raises `AudioFormatError` at the caller.
    """

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE, channels: int = 1) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self.channels = _check_channels(channels)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self._claimed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def push(self, chunk: Any) -> None:
        """Add audio to the stream. Raises `RuntimeError` after `close()`."""
        if self._closed:
            raise RuntimeError("StreamedAudioInput.push() after close()")
        pcm = _pcm16_mono(chunk, self.channels)
        if pcm:
            self._queue.put_nowait(pcm)

    async def close(self) -> None:
        """End the stream: the turn in progress is finished and the session ends. Idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    def _claim(self) -> None:
        """Reserve the stream for one pipeline run: two readers would each get half the audio."""
        if self._claimed:
            raise RuntimeError("this StreamedAudioInput is already used by a pipeline run")
        self._claimed = True

    async def chunks(self) -> AsyncIterator[bytes]:
        """The pushed PCM16 mono chunks until `close()` (for one consumer: the pipeline)."""
        while (chunk := await self._queue.get()) is not None:
            yield chunk
