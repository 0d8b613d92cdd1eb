"""Type stubs for the native core (`rust/`). Kept by hand: update with every Rust API change."""

# Imports used by the wire section below.
from typing import Literal, final

import numpy as np
import numpy.typing as npt

__version__: str

class AudioFormatError(ValueError):
    """Audio data or parameters that fastvoice cannot interpret."""

# ---------------------------------------------------------------------------
# wire: Realtime wire fast paths and the SPSC ring buffer (rust/src/wire.rs, rust/src/ring.rs)
# ---------------------------------------------------------------------------

def append_frame(pcm16: bytes | bytearray | memoryview | npt.NDArray[np.generic]) -> bytes:
    """Build the `input_audio_buffer.append` Realtime event for `pcm16`, as JSON text bytes.

    The result is byte-identical to
    `json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()},
    separators=(",", ":")).encode()`. Accepts PCM16 bytes or int16 arrays as they are, and
    float32/float64 arrays converted to PCM16 in the same pass (scale 32768, round, clip, NaN -> 0).
    Raises `AudioFormatError` for an odd number of PCM16 bytes or a non-audio dtype.
    """

def parse_audio_delta(frame: str | bytes) -> AudioDelta | None:
    """Decode a `response.output_audio.delta` (or beta `response.audio.delta`) text frame.

    Returns None for every other frame, including text that is not JSON. Raises
    `AudioFormatError` if the frame is an audio delta but malformed (broken JSON, missing or
    mistyped members, invalid base64, odd decoded length). No Python dict is built.
    """

@final
class AudioDelta:
    """One decoded audio delta event (immutable)."""

    @property
    def type(self) -> Literal["response.output_audio.delta", "response.audio.delta"]: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def item_id(self) -> str: ...
    @property
    def response_id(self) -> str: ...
    @property
    def output_index(self) -> int: ...
    @property
    def content_index(self) -> int: ...
    @property
    def pcm(self) -> bytes:
        """The decoded PCM16 little-endian audio."""
    def samples(self, dtype: Literal["int16", "float32"] = "int16") -> npt.NDArray[np.int16 | np.float32]:
        """The audio as a new numpy array: int16, or float32 scaled by 1/32768."""
    def __len__(self) -> int:
        """Number of samples."""
    def duration_ms(self, sample_rate: int = 24000) -> float:
        """Playing time in milliseconds at `sample_rate` Hz."""

@final
class RingBuffer:
    """Thread-safe single-producer/single-consumer ring buffer of audio samples.

    Meant for handing audio between a real-time thread (e.g. a sounddevice callback) and an
    asyncio loop: each side takes only its own uncontended lock, big copies release the GIL.
    `overflow` decides what `write` does when samples do not fit: "drop_oldest" (default)
    evicts unread samples, "drop_newest" stores what fits, "error" raises OverflowError and
    stores nothing. Lost samples are counted in `overflows`.
    """

    def __init__(
        self,
        capacity: int,
        dtype: Literal["int16", "float32"] = "int16",
        overflow: Literal["drop_oldest", "drop_newest", "error"] = "drop_oldest",
    ) -> None: ...
    def write(self, samples: bytes | bytearray | memoryview | npt.NDArray[np.generic]) -> int:
        """Append PCM16 bytes or an int16/float32/float64 array (converted to `dtype`).

        Returns the number of samples stored. Raises OverflowError under overflow="error".
        """
    def read(self, n: int | None = None) -> npt.NDArray[np.int16 | np.float32]:
        """Take up to `n` samples (all available if None) as a new array of `dtype`."""
    def read_into(self, out: npt.NDArray[np.int16 | np.float32], *, pad: bool = False) -> int:
        """Fill the start of a writable C-contiguous int16/float32 array; returns samples read.

        Allocates nothing (for playback callbacks). With `pad=True` the rest of `out` is zeroed.
        """
    @property
    def available(self) -> int:
        """Samples ready to read."""
    @property
    def free(self) -> int:
        """Room left before the overflow policy applies."""
    @property
    def capacity(self) -> int: ...
    @property
    def written(self) -> int:
        """Total samples stored by `write` since creation or `reset()`."""
    @property
    def consumed(self) -> int:
        """Total samples read since creation or `reset()`; `consumed / rate` = seconds played."""
    @property
    def overflows(self) -> int:
        """Total samples lost to overflow since creation or `reset()`."""
    @property
    def dtype(self) -> Literal["int16", "float32"]: ...
    @property
    def overflow(self) -> Literal["drop_oldest", "drop_newest", "error"]: ...
    def clear(self) -> int:
        """Discard all unread samples (not counted as consumed); returns how many."""
    def reset(self) -> None:
        """Discard all unread samples and zero `written`, `consumed` and `overflows`."""
    def __len__(self) -> int:
        """Same as `available`."""
