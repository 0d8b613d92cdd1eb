"""Audio: PCM16/float conversion, WAV, G.711, resampling, ring buffers and wire fast paths.

Everything here is implemented in the Rust core (`fastvoice._fastvoice`) and accepts
`bytes`, `bytearray`, `memoryview` or numpy arrays without copying.
"""

from fastvoice._fastvoice import (
    AudioFormatError,
    # codec
    WavAudio,
    alaw_decode,
    alaw_encode,
    from_pcm16,
    to_mono,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
    wav_decode,
    wav_encode,
)

__all__ = [
    "AudioFormatError",
    # codec
    "WavAudio",
    "alaw_decode",
    "alaw_encode",
    "from_pcm16",
    "to_mono",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
    "wav_decode",
    "wav_encode",
]
