"""Audio: PCM16/float conversion, WAV, G.711, resampling, ring buffers, wire fast paths and a VAD.

Everything here is implemented in the Rust core (`fastvoice._fastvoice`) and accepts
`bytes`, `bytearray`, `memoryview` or numpy arrays without copying.
"""

from fastvoice._fastvoice import (
    VAD,
    AudioDelta,
    AudioFormatError,
    Resampler,
    RingBuffer,
    VADEvent,
    WavAudio,
    alaw_decode,
    alaw_encode,
    append_frame,
    from_pcm16,
    parse_audio_delta,
    resample,
    to_mono,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
    wav_decode,
    wav_encode,
)

__all__ = [
    "VAD",
    "AudioDelta",
    "AudioFormatError",
    "Resampler",
    "RingBuffer",
    "VADEvent",
    "WavAudio",
    "alaw_decode",
    "alaw_encode",
    "append_frame",
    "from_pcm16",
    "parse_audio_delta",
    "resample",
    "to_mono",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
    "wav_decode",
    "wav_encode",
]
