"""Input audio for a session: validation, one persistent resampler per input rate, G.711 encoding, and the
``input_audio_buffer.append`` frame for G.711 (what is kept for a reconnect is in
:mod:`~fastvoice.realtime._inflight`).

PCM sessions hand the (possibly resampled) samples straight to the transport, which builds the
``input_audio_buffer.append`` frame natively (base64 + JSON in Rust, floats converted with the PCM16 rule), so
a 20 ms chunk costs no Python-side encoding at all. G.711 sessions encode natively first.
"""

from __future__ import annotations

import base64
from typing import Any, TypeAlias

import numpy as np

from fastvoice._fastvoice import AudioFormatError, Resampler, alaw_encode, ulaw_encode
from fastvoice.realtime.config import AudioFormatInfo

__all__ = ["AudioInput", "Payload", "g711_append_text"]

Payload: TypeAlias = "bytes | np.ndarray[Any, Any]"
"""What goes on the wire: PCM16 bytes, an int16/float32 array (PCM sessions), or G.711 bytes."""


class AudioInput:
    """Turns whatever the application passes to ``send_audio`` into wire audio for one session."""

    __slots__ = ("_encode", "_resamplers", "fmt")

    def __init__(self, fmt: AudioFormatInfo) -> None:
        self.fmt = fmt
        self._encode = {"audio/pcmu": ulaw_encode, "audio/pcma": alaw_encode}.get(fmt.ga_type)
        # (input rate, dtype) -> its stream; kept for the whole session so chunk boundaries stay seamless.
        self._resamplers: dict[tuple[int, str], Resampler] = {}

    def prepare(self, data: object, sample_rate: int) -> Payload:
        """Validate ``data`` (PCM16 bytes-like, or a 1-D numpy int16/float32/float64 array) recorded at
        ``sample_rate`` and return it in the session's input format.

        Raises ``AudioFormatError`` (a ``ValueError``) for an odd byte count, an unsupported dtype, more than
        one channel or NaN samples, and for a sample rate outside 1000..384000; ``TypeError`` for other
        objects.
        """
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
            raise AudioFormatError(f"sample_rate must be an int, got {sample_rate!r}")
        if not 1000 <= sample_rate <= 384000:
            raise AudioFormatError(f"sample_rate must be within 1000..384000 Hz, got {sample_rate}")
        audio: Payload
        if isinstance(data, bytes | bytearray | memoryview):
            n = data.nbytes if isinstance(data, memoryview) else len(data)
            if n % 2:
                raise AudioFormatError(
                    f"send_audio: PCM16 bytes must have an even length (2 bytes per sample), got {n} bytes"
                )
            audio = data if isinstance(data, bytes) else bytes(data)
            kind = "int16"
        elif isinstance(data, np.ndarray):
            arr = data
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr.reshape(-1)
            if arr.ndim != 1:
                raise AudioFormatError(
                    f"send_audio takes mono audio (a 1-D array), got shape {data.shape}; "
                    "downmix with fastvoice.audio.to_mono first"
                )
            kind = arr.dtype.name
            if kind == "float64":
                arr = arr.astype(np.float32)
                kind = "float32"
            if kind == "float32":
                # NaN samples mean a broken upstream; refusing them beats sending silence the user never
                # recorded. The sum is NaN iff a sample is NaN (or +inf and -inf both occur).
                if np.isnan(np.add.reduce(arr, dtype=np.float32)):
                    raise AudioFormatError("send_audio: audio contains NaN samples")
            elif kind != "int16":
                raise AudioFormatError(
                    f"send_audio takes int16, float32 or float64 samples (or PCM16 bytes), got dtype {kind}"
                )
            audio = arr
        else:
            raise TypeError(
                f"send_audio takes PCM16 bytes or a numpy int16/float32 array, got {type(data).__name__}"
            )
        if sample_rate != self.fmt.sample_rate:
            rs = self._resamplers.get((sample_rate, kind))
            if rs is None:
                rs = Resampler(sample_rate, self.fmt.sample_rate, 1, "low_latency")
                self._resamplers[(sample_rate, kind)] = rs
            audio = rs.process(audio)
        if self._encode is not None:
            return self._encode(audio)
        return audio

    def flush(self) -> list[Payload]:
        """The resamplers' tails (called before a commit, so the last few ms are not left behind)."""
        out: list[Payload] = []
        for rs in self._resamplers.values():
            tail = rs.flush()
            if len(tail):
                out.append(self._encode(tail) if self._encode is not None else tail)
        return out

    def wire_bytes(self, payload: Payload) -> int:
        """Size of ``payload`` on the wire after decoding (PCM16: 2 bytes a sample; G.711: 1)."""
        if isinstance(payload, bytes):
            return len(payload)
        return len(payload) * 2


def g711_append_text(codes: bytes) -> str:
    """The ``input_audio_buffer.append`` frame for G.711 bytes (the native fast path is PCM16-only)."""
    return '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(codes).decode("ascii") + '"}'
