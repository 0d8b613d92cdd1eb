"""Type stubs for the native core (`rust/`). Kept by hand: update with every Rust API change."""

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__version__: str

class AudioFormatError(ValueError):
    """Audio data or parameters that fastvoice cannot interpret."""

# ---------------------------------------------------------------------------
# resample area: streaming sample-rate conversion (rust/src/resample/)
# ---------------------------------------------------------------------------

_ResampleInput: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[np.float32] | npt.NDArray[np.int16]
_ResampleOutput: TypeAlias = npt.NDArray[np.float32] | npt.NDArray[np.int16]

class Resampler:
    """Streaming, stateful sample-rate converter for one audio stream (rubato inside).

    Feed chunks of any length (0, 1, odd, 10 or 20 ms...) to :meth:`process`; the output
    is bit-identical whatever the chunking, because input is staged into fixed engine
    blocks. Frames that do not yet fill a block wait for the next call or :meth:`flush`.

    Samples: float32 or int16 (``bytes``/``bytearray`` are PCM16 and count as int16); the
    output has the input's dtype (int16 output uses the float -> PCM16 rule: scale 32768,
    round, clip). float64 is rejected with ``AudioFormatError`` (convert with
    ``x.astype(numpy.float32)``): a stream never silently changes precision. One stream
    carries one dtype; switching dtype needs :meth:`reset` or :meth:`flush` first.

    Channels: multi-channel input is interleaved (1-D) or a ``(frames, channels)`` array;
    the output uses the same layout.

    Timing: output frame ``k`` shows the input at time ``k / out_rate - delay_ms / 1000``
    (the algorithmic delay; use it to align, or use :func:`resample` for whole clips).

    Quality: ``"high"`` (FFT engine): a passband flat to better than 80 dB SNR up to
    0.45 of the lower Nyquist frequency (about 120 dB measured) and more than 100 dB
    rejection of tones above the output Nyquist frequency; delay 1.3-5 ms for common
    pairs of 8/16/22.05/24/44.1/48 kHz, 10 ms for 22.05 kHz <-> 8/16 kHz.
    ``"low_latency"``: delay at most 3 ms whenever the lower rate is 5.4 kHz or more
    (0.67-2.05 ms for those rates; its filter spans 32 samples of the lower rate) with
    more than 100 dB SNR on the same test and more than 100 dB rejection.

    Odd float32 values never raise or poison the stream: NaN counts as 0 (silence, as in
    the PCM16 rule) and every sample is clamped to +-65536 (so +-inf becomes +-65536).

    Thread safety: use one Resampler per stream; calling it from two threads at once
    raises ``RuntimeError``. Large chunks are resampled without holding the GIL.
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        channels: int = 1,
        quality: Literal["high", "low_latency"] = "high",
    ) -> None:
        """Rates must be 1000..384000 Hz and channels 1..64, else ``AudioFormatError``."""
    def process(self, chunk: _ResampleInput) -> _ResampleOutput:
        """Resample the next chunk; returns the output frames that are ready (maybe none).

        Raises ``AudioFormatError`` if the length is not a whole number of frames, the
        dtype is float64 or differs from earlier chunks, or a 2-D chunk has the wrong
        number of columns.
        """
    def flush(self) -> _ResampleOutput:
        """End the stream: return the remaining output, including the delayed tail.

        After ``flush`` the stream has produced ``round((n_in / in_rate + delay_ms / 1000)
        * out_rate)`` frames in total for ``n_in`` input frames (0 if nothing was fed),
        that is ``n_in * out_rate / in_rate`` frames plus the delay, rounded to the nearest
        frame (halves up). The Resampler is then reset and ready for a new stream.
        """
    def reset(self) -> None:
        """Drop all buffered input and filter state without output; unlock the dtype."""
    @property
    def in_rate(self) -> int: ...
    @property
    def out_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def quality(self) -> str:
        """``"high"`` or ``"low_latency"``."""
    @property
    def delay_ms(self) -> float:
        """Algorithmic delay of the output in milliseconds (exact, may be fractional)."""

def resample(
    x: _ResampleInput,
    in_rate: int,
    out_rate: int,
    quality: Literal["high", "low_latency"] = "high",
) -> _ResampleOutput:
    """Resample a whole clip with the same machinery as :class:`Resampler`.

    The delay is removed, so the output is time-aligned with the input: output frame ``k``
    shows the input at time ``k / out_rate``. The output has ``len * out_rate / in_rate``
    frames rounded to the nearest (halves up), the input's dtype (float32 or int16; float64 is rejected) and
    layout: 1-D input is mono, a ``(frames, channels)`` array is multi-channel.
    """
