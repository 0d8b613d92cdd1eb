"""An uploaded audio file for ``/v1/audio/transcriptions``: what it is, its samples, and where its speech is.

WAV in whatever form :func:`fastvoice.audio.wav_decode` reads (PCM 8/16/24/32-bit, float 32/64-bit, A-law and
μ-law, WAVE_FORMAT_EXTENSIBLE; any rate and channel count) is decoded natively. A raw upload, sent as
``audio/pcm`` or with a ``.pcm`` file name, is PCM16 little-endian mono at 24 kHz: the Realtime API's format,
the one headerless audio an OpenAI client has at hand. Either becomes PCM16 mono at 16 kHz (the rate both
offline recognisers run at, resampled once, natively). Compressed containers are told by their first bytes
and refused by name, since no decoder for them ships with fastvoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from fastvoice import audio

__all__ = ["STT_RATE", "SUPPORTED", "Clip", "UploadError", "decode_upload", "speech_spans"]

STT_RATE = 16000
PCM_RATE = 24000  # a raw upload's rate
MIN_RATE, MAX_RATE = 4000, 384000
MIN_SECONDS = 0.1  # OpenAI's minimum
MAX_SECONDS = 3600.0  # bounds the resampled copy (115 MB at 16 kHz) whatever the file's rate
SUPPORTED = (
    "WAV (PCM 8/16/24/32-bit, float 32/64-bit, A-law or μ-law; any sample rate and channel count) or raw "
    "PCM16 little-endian mono 24 kHz (Content-Type audio/pcm or a .pcm file name)"
)

_FRAME = STT_RATE // 50  # 20 ms
_PAUSE_FRAMES = 25  # a quiet stretch of 0.5 s or more ends a segment
_PAD = STT_RATE // 5  # 200 ms of context kept on either side of a segment's speech
_BLOCK_FRAMES = 3000  # a minute of frames at a time: bounded temporaries for long files
_COMPRESSED_SUFFIXES = {
    "mp3": "MP3",
    "mpga": "MP3",
    "mpeg": "MPEG",
    "mp4": "MP4",
    "m4a": "M4A",
    "aac": "AAC",
    "ogg": "Ogg",
    "oga": "Ogg",
    "opus": "Opus",
    "flac": "FLAC",
    "webm": "WebM",
    "amr": "AMR",
}


class UploadError(ValueError):
    """The upload cannot be transcribed; ``str(exc)`` says why for the client, ``code`` is OpenAI's."""

    def __init__(self, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Clip:
    """An upload as PCM16 mono at :data:`STT_RATE`, and the length of the original in seconds."""

    pcm16: bytes
    duration: float


def _container(head: bytes) -> str | None:
    """The compressed format a file whose first 12 bytes are ``head`` is in, told by its magic, or None."""
    if head[:3] == b"ID3":
        return "MP3"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "WebM/Matroska"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:5] == b"#!AMR":
        return "AMR"
    return None


def _mpeg_sync(head: bytes) -> bool:
    # An MPEG audio frame (MP3, or AAC in ADTS): 11 set sync bits and a non-reserved layer. Only trusted for
    # uploads not declared raw PCM, whose samples may start with these bytes by chance.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08


def declared_pcm(filename: str | None, content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "audio/pcm" or PurePath(filename or "").suffix.lower() == ".pcm"


def decode_upload(data: bytes | bytearray, filename: str | None, content_type: str | None) -> Clip:
    """The upload as a :class:`Clip`, or :class:`UploadError` naming what is wrong and what is read.
    Blocking (decoding and resampling a long file takes a while): call it from a worker thread."""
    if not data:
        raise UploadError("The audio file is empty.")
    head = bytes(data[:12])
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return _wav(data)
    kind = _container(head)
    if kind is None and not declared_pcm(filename, content_type):
        if _mpeg_sync(head):
            kind = "MP3/AAC"
        else:
            kind = _COMPRESSED_SUFFIXES.get(PurePath(filename or "").suffix.lower().lstrip("."))
    if kind is not None:
        raise UploadError(
            f"{kind} audio cannot be decoded by this offline server. Send {SUPPORTED}.", "unsupported_format"
        )
    if not declared_pcm(filename, content_type):
        raise UploadError(f"The file is not audio this server reads. Send {SUPPORTED}.", "unsupported_format")
    if len(data) % 2:
        raise UploadError(
            f"Raw PCM must be 16-bit samples, but the upload has an odd number of bytes ({len(data)})."
        )
    return _clip(np.frombuffer(data, dtype="<i2"), PCM_RATE)


def _wav(data: bytes | bytearray) -> Clip:
    try:
        wav = audio.wav_decode(data)
    except audio.AudioFormatError as exc:
        raise UploadError(f"The WAV file could not be read: {exc}.") from None
    rate = int(wav.sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UploadError(f"The WAV file's sample rate is {rate} Hz; {MIN_RATE}-{MAX_RATE} Hz is accepted.")
    pcm = wav.pcm16 if wav.channels == 1 else audio.to_mono(wav.pcm16, wav.channels)
    return _clip(np.frombuffer(pcm, dtype="<i2"), rate)


def _clip(samples: np.ndarray, rate: int) -> Clip:
    duration = len(samples) / rate
    if duration < MIN_SECONDS:
        raise UploadError(
            f"Audio file is too short. Minimum audio length is {MIN_SECONDS} seconds.", "audio_too_short"
        )
    if duration > MAX_SECONDS:
        raise UploadError(
            f"The audio is {duration:.0f} seconds long; at most {MAX_SECONDS:.0f} seconds are transcribed."
        )
    if rate != STT_RATE:
        samples = audio.resample(samples, rate, STT_RATE)
    return Clip(audio.to_pcm16(samples), duration)


def speech_spans(pcm16: bytes) -> list[tuple[int, int]]:
    """Where the speech of PCM16 mono 16 kHz audio is: ``(start, end)`` sample ranges, one per stretch of
    sound between pauses of 0.5 s or more, each with up to 200 ms of the quiet around it. A 20 ms frame is
    sound when its power is within 30 dB of the loudest frame's and above -50 dBFS (the rule the streamed
    Whisper turns use), so a quiet room is no speech at all and nothing is sent to the recogniser."""
    x = np.frombuffer(pcm16, dtype="<i2")
    frames = len(x) // _FRAME
    if not frames:
        return []
    power = np.empty(frames, dtype=np.float32)
    for first in range(0, frames, _BLOCK_FRAMES):
        last = min(frames, first + _BLOCK_FRAMES)
        block = x[first * _FRAME : last * _FRAME].astype(np.float32) / 32768.0
        power[first:last] = (block * block).reshape(-1, _FRAME).mean(axis=1)
    loud = np.flatnonzero(power > max(1e-5, float(power.max()) * 1e-3))
    if not len(loud):
        return []
    breaks = np.flatnonzero(np.diff(loud) - 1 >= _PAUSE_FRAMES)
    starts = [int(loud[0]), *(int(loud[i + 1]) for i in breaks)]
    ends = [*(int(loud[i]) + 1 for i in breaks), int(loud[-1]) + 1]
    return [
        (max(0, s * _FRAME - _PAD), min(len(x), e * _FRAME + _PAD)) for s, e in zip(starts, ends, strict=True)
    ]
