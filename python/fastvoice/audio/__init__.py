"""Audio: PCM16/float conversion, WAV, G.711, resampling, ring buffers and wire fast paths.

Everything here is implemented in the Rust core (`fastvoice._fastvoice`) and accepts
`bytes`, `bytearray`, `memoryview` or numpy arrays without copying.
"""

from fastvoice._fastvoice import (
    AudioFormatError,
    Resampler,
    resample,
)

__all__ = [
    "AudioFormatError",
    "Resampler",
    "resample",
]
