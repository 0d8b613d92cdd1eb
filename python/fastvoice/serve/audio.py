"""Audio at the edges of a served session: the session's wire format in, PCM16 out, and back.

The Realtime protocol carries three formats: ``audio/pcm`` (PCM16 mono 24 kHz), ``audio/pcmu`` and
``audio/pcma`` (G.711 at 8 kHz). The engines speak PCM16 (the STT at any rate, the TTS at 24 kHz), so input is
decoded to PCM16 at the format's own rate, and TTS output is resampled natively (one streaming
:class:`fastvoice.audio.Resampler` per reply, so chunk boundaries leave no seams) and encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastvoice import audio

__all__ = ["FORMATS", "InputDecoder", "OutputEncoder", "format_of", "rate_of"]

#: wire format -> (sample rate, bytes per sample on the wire)
FORMATS: dict[str, tuple[int, int]] = {
    "audio/pcm": (24000, 2),
    "audio/pcmu": (8000, 1),
    "audio/pcma": (8000, 1),
}

TTS_RATE = 24000


def format_of(session: Mapping[str, Any], direction: str) -> str:
    """The session's ``audio.<direction>.format.type`` (``audio/pcm`` when unset)."""
    fmt = ((session.get("audio") or {}).get(direction) or {}).get("format") or {}
    kind = fmt.get("type", "audio/pcm")
    return kind if kind in FORMATS else "audio/pcm"


def rate_of(kind: str) -> int:
    return FORMATS[kind][0]


def wire_bytes_per_ms(kind: str) -> float:
    rate, width = FORMATS[kind]
    return rate * width / 1000.0


class InputDecoder:
    """Wire bytes of ``input_audio_buffer.append`` to PCM16 at the format's rate."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rate = rate_of(kind)

    def decode(self, wire: bytes) -> bytes:
        """PCM16 little-endian bytes; raises ``AudioFormatError`` for an odd PCM16 byte count."""
        if self.kind == "audio/pcmu":
            return audio.ulaw_decode(wire)
        if self.kind == "audio/pcma":
            return audio.alaw_decode(wire)
        if len(wire) % 2:
            raise audio.AudioFormatError(
                f"audio/pcm input must be 16-bit samples, got an odd number of bytes ({len(wire)})"
            )
        return wire


class OutputEncoder:
    """TTS PCM16 at 24 kHz to the session's output format, streamed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._resampler = None if kind == "audio/pcm" else audio.Resampler(TTS_RATE, rate_of(kind))

    def _encode(self, pcm16: bytes) -> bytes:
        if self.kind == "audio/pcmu":
            return audio.ulaw_encode(pcm16)
        if self.kind == "audio/pcma":
            return audio.alaw_encode(pcm16)
        return pcm16

    def process(self, pcm24k: bytes) -> bytes:
        if self._resampler is None:
            return pcm24k
        out = self._resampler.process(pcm24k)
        return self._encode(audio.to_pcm16(out)) if len(out) else b""

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        out = self._resampler.flush()
        return self._encode(audio.to_pcm16(out)) if len(out) else b""
