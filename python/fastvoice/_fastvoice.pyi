"""Type stubs for the native core (`rust/`). Kept by hand: update with every Rust API change."""

from collections.abc import Callable
from typing import Any, Literal, Self, TypeAlias, TypeVar, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "VAD",
    "AudioDelta",
    "AudioFormatError",
    "CallerStream",
    "Resampler",
    "RingBuffer",
    "TransportConnection",
    "TransportLoopWaker",
    "TransportPending",
    "VADEvent",
    "WavAudio",
    "__version__",
    "alaw_decode",
    "alaw_encode",
    "append_frame",
    "caller_attach",
    "from_pcm16",
    "parse_audio_delta",
    "resample",
    "scrub_secrets",
    "to_mono",
    "to_pcm16",
    "transport_accept",
    "transport_connect",
    "transport_runtime_running",
    "transport_shutdown",
    "ulaw_decode",
    "ulaw_encode",
    "wav_decode",
    "wav_encode",
]

__version__: str

class AudioFormatError(ValueError):
    """Audio data or parameters that fastvoice cannot interpret."""

# ---------------------------------------------------------------------------
# codec: PCM16 <-> float, downmix, WAV, G.711  (rust/src/pcm.rs, wav.rs, g711.rs)
# ---------------------------------------------------------------------------
# Audio arguments accept bytes, bytearray, memoryview or numpy arrays without
# copying. Raw byte buffers are PCM16 little-endian. Float samples map to PCM16
# as int16 = clip(round_half_away_from_zero(x * 32768)), NaN -> 0.

_ScalarT = TypeVar("_ScalarT", bound=np.generic)
_Buffer: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[Any]

def to_pcm16(samples: _Buffer) -> bytes:
    """Convert float32/float64 samples in [-1, 1] to PCM16 bytes (clip outside, NaN -> 0).

    PCM16 input (bytes, bytearray, memoryview, int16 array) passes through as bytes; a
    `bytes` object is returned unchanged without a copy. Raises AudioFormatError for an odd
    number of bytes or an unsupported dtype.
    """

@overload
def from_pcm16(data: _Buffer, dtype: Literal["int16"] = "int16") -> npt.NDArray[np.int16]:
    """PCM16 (bytes or int16 array) to a new, writable 1-D array of `dtype`.

    "int16" keeps the values; "float32" gives x / 32768 in [-1, 1). `dtype` may also be
    anything numpy.dtype() accepts naming one of those two. An odd byte count, float
    input or any other dtype raises AudioFormatError.
    """

@overload
def from_pcm16(data: _Buffer, dtype: Literal["float32"]) -> npt.NDArray[np.float32]: ...
@overload
def from_pcm16(data: _Buffer, dtype: str | type | np.dtype[Any]) -> npt.NDArray[Any]: ...
@overload
def to_mono(samples: bytes | bytearray | memoryview, channels: int) -> bytes:
    """Downmix interleaved frames of `channels` samples to one channel by averaging.

    Byte buffers (PCM16) give bytes; numpy arrays give a 1-D array of the same dtype
    (int16, float32 or float64; a 2-D (frames, channels) C-order array also works).
    Integer means are rounded half away from zero; float means are sum / channels.
    `channels == 1` returns `samples` itself after validation. Raises AudioFormatError
    if `channels` is not in 1..65535 or the sample count is not a multiple of it.
    """

@overload
def to_mono(samples: npt.NDArray[_ScalarT], channels: int) -> npt.NDArray[_ScalarT]: ...

@final
class WavAudio:
    """Result of wav_decode(): PCM16 audio and the format of the source file. Immutable."""

    @property
    def pcm16(self) -> bytes:
        """Interleaved little-endian PCM16 samples."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def num_frames(self) -> int:
        """Samples per channel."""
    @property
    def duration_s(self) -> float:
        """num_frames / sample_rate."""
    @property
    def bits_per_sample(self) -> int:
        """Bits per sample of the source file (8, 16, 24, 32 or 64)."""
    @property
    def format(self) -> Literal["pcm", "float", "alaw", "ulaw"]:
        """Sample encoding of the source file."""

def wav_encode(pcm16: _Buffer, sample_rate: int = 24000, channels: int = 1) -> bytes:
    """A canonical 16-bit PCM WAV file (44-byte header + data).

    Accepts PCM16 bytes or an int16 array of interleaved frames; float32/float64 arrays
    are converted with the to_pcm16() rule. Raises AudioFormatError if the sample count is
    not a multiple of `channels`, `channels` is not in 1..65535, `sample_rate` is not in
    1..2**32-1, or the data exceeds the 4 GiB WAV limit.
    """

def wav_decode(data: _Buffer) -> WavAudio:
    """Decode a WAV file held in memory to PCM16.

    Reads PCM 8 (unsigned)/16/24/32-bit, IEEE float 32/64, G.711 A-law/μ-law and
    WAVE_FORMAT_EXTENSIBLE of these; skips unknown chunks (also before fmt, with odd-size
    padding). Wider formats map to PCM16 as if normalised to [-1, 1) and converted with
    the to_pcm16() rule (rounded, not truncated). The RIFF size is ignored; a data size of
    0 or 0xFFFFFFFF (streaming) or one larger than the buffer means "to the end of the
    buffer"; a trailing partial frame is dropped. Raises AudioFormatError naming the
    problem for anything else (not RIFF/WAVE, truncated header, missing fmt/data chunk,
    fmt overrunning the buffer, unsupported codec or bit depth, zero channels or rate,
    block-align mismatch).
    """

def ulaw_encode(pcm16: _Buffer) -> bytes:
    """PCM16 (or float, via the to_pcm16() rule) to G.711 μ-law, one byte per sample.

    Byte-identical to the removed audioop.lin2ulaw(data, 2).
    """

def ulaw_decode(data: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> bytes:
    """G.711 μ-law codes to PCM16 little-endian bytes (ITU-T G.711 table)."""

def alaw_encode(pcm16: _Buffer) -> bytes:
    """PCM16 (or float, via the to_pcm16() rule) to G.711 A-law, one byte per sample.

    Byte-identical to the removed audioop.lin2alaw(data, 2).
    """

def alaw_decode(data: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> bytes:
    """G.711 A-law codes to PCM16 little-endian bytes (ITU-T G.711 table)."""

# ---------------------------------------------------------------------------
# resample area: streaming sample-rate conversion (rust/src/resample/)
# ---------------------------------------------------------------------------

_ResampleInput: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[np.float32] | npt.NDArray[np.int16]
_ResampleOutput: TypeAlias = npt.NDArray[np.float32] | npt.NDArray[np.int16]

@final
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

    def __new__(
        cls,
        in_rate: int,
        out_rate: int,
        channels: int = 1,
        quality: Literal["high", "low_latency"] = "high",
    ) -> Self:
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
    mistyped members, invalid or non-canonical base64, odd decoded length, an id with a lone
    UTF-16 surrogate escape). Field order, whitespace, JSON escapes (including `\\/` in the
    payload) and unknown members are handled like `json.loads`. No Python dict is built.
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

    def __new__(
        cls,
        capacity: int,
        dtype: Literal["int16", "float32"] = "int16",
        overflow: Literal["drop_oldest", "drop_newest", "error"] = "drop_oldest",
    ) -> Self: ...
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
    def skipped(self) -> int:
        """Total samples removed unread (`clear()`, `drop_oldest` evictions) since creation or `reset()`;
        `written - skipped` is the `consumed` count at which the next written sample is read."""
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

# ---------------------------------------------------------------------------
# transport: native WebSocket client internals (rust/src/transport/). The public API is
# `fastvoice.transport` (python/fastvoice/transport/), which drives these objects.
# ---------------------------------------------------------------------------

@final
class TransportLoopWaker:
    """One per asyncio loop: the tokio side signals it when armed connections have news."""

    def __new__(cls, callback: Callable[[], object] | None = None) -> Self:
        """An eventfd wake-up by default (a socketpair with `FASTVOICE_TRANSPORT_WAKE=socketpair`, for A/B);
        with `callback`, call it under the GIL instead."""
    def fileno(self) -> int | None:
        """The fd to watch with `loop.add_reader` (None in callback mode)."""
    def drain(self) -> list[int]:
        """Clear the wake-up and return the ids of connections (or connects) with news."""

@final
class TransportPending:
    """A connect in progress on the shared tokio runtime."""

    @property
    def id(self) -> int: ...
    def result(self) -> TransportConnection | None:
        """The connection once open, None while connecting; raises `ConnectError`."""
    def cancel(self) -> None:
        """Abort the connect (a connection that opened meanwhile is closed)."""

@final
class TransportConnection:
    """The native half of `fastvoice.transport.Connection`. Methods never block: they act at
    once or arm a wake-up and return None/False."""

    @property
    def id(self) -> int: ...
    def recv_one(self) -> str | bytes | AudioDelta | None: ...
    def recv_batch(self, max_n: int) -> list[str | bytes | AudioDelta] | None: ...
    def send_text(self, text: str) -> bool: ...
    def send_bytes(self, data: bytes | bytearray | memoryview) -> bool: ...
    def send_audio(self, pcm: bytes | bytearray | memoryview | npt.NDArray[np.generic]) -> bool: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def wait_end(self) -> tuple[int, str] | None: ...
    def queue_state(self) -> tuple[int, int, bool, int, int]:
        """(inbox messages, inbox bytes, reader paused, outbox messages, armed bits)."""
    @property
    def closed(self) -> bool: ...
    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str | None: ...
    def set_audio_output(
        self, ring: RingBuffer | None = None, encoding: str = "pcm16", *, codes: bool = False
    ) -> None:
        """Route audio deltas into `ring` (decoded natively; `codes`: G.711 codes kept as they are, one
        per slot) instead of delivering them; None stops."""
    def audio_output_state(self) -> tuple[str, int, str, int, int] | None:
        """(item_id, content_index, response_id, received_bytes, ring_start) of the current item."""
    def cut_audio_output(self, discard_response: str | None = None) -> tuple[str, int, str, int, int] | None:
        """End the current item atomically: clear the ring, drop the rest of its response."""
    def reset_audio_output(self) -> None: ...
    @property
    def audio_output_dropped(self) -> int: ...
    @property
    def audio_output_received(self) -> int: ...
    def set_audio_input(
        self,
        ring: RingBuffer | None = None,
        encoding: str = "pcm16",
        sample_rate: int = 24000,
        chunk_ms: float = 20.0,
        pace: bool = False,
        retain_bytes: int | None = None,
        *,
        codes: bool = False,
    ) -> None:
        """Send the ring's audio as append frames every chunk_ms from the native task (`codes`: the ring
        holds G.711 codes, sent unchanged); None stops."""
    def flush_audio_input(self) -> int: ...
    @property
    def audio_input_sent(self) -> int: ...
    def take_audio_input_retained(self) -> tuple[bytes, int]: ...

def transport_connect(
    url: str,
    headers: list[tuple[str, str]],
    waker: TransportLoopWaker,
    *,
    open_timeout: float,
    ping_interval: float | None,
    ping_timeout: float,
    close_timeout: float,
    max_message_size: int,
    max_queue: int,
    max_queue_bytes: int,
    ca_file: str | None,
    allow_insecure_ws: bool,
    decode_audio: bool,
) -> TransportPending:
    """Start connecting on the shared runtime; raises ValueError for bad arguments."""

def transport_accept(
    fd: int,
    response: bytes,
    waker: TransportLoopWaker,
    *,
    ping_interval: float | None,
    ping_timeout: float,
    close_timeout: float,
    max_message_size: int,
    max_queue: int,
    max_queue_bytes: int,
) -> TransportPending:
    """Take over an upgraded server socket: `fd` is owned (and closed) by the transport from now on;
    `response` (the 101 head) is written, then it speaks WebSocket as the server."""

@final
class CallerStream:
    """A phone caller's media stream running natively on an accepted connection (`caller_attach`)."""

    @property
    def heard(self) -> int:
        """The caller's position in the playback ring's `consumed` numbering (from mark acks)."""
    def clear(self) -> None:
        """Drop buffered playback here and at the provider (its clear frame); forget pending marks."""
    def feed(self, frame: str) -> bool:
        """Route a text frame Python received; True if it was caller media or one of our mark acks."""
    @property
    def stats(self) -> tuple[int, int, int, int, int, int]:
        """(frames_in, frames_out, marks_acked, underruns, bad_frames, max_late_us)."""

def caller_attach(
    conn: TransportConnection,
    *,
    media_prefix: str,
    media_suffix: str,
    mark_prefix: str,
    mark_suffix: str,
    clear: str,
    media_event: str,
    ack_event: str,
    binary: bool = False,
    encoding: str,
    sample_rate: int,
    big_endian: bool = False,
    mic: RingBuffer,
    mic_rate: int,
    mic_codes: bool,
    playback: RingBuffer,
    playback_rate: int,
    playback_codes: bool,
    early: list[str] = ...,
    early_binary: list[bytes] = ...,
    frame_ms: int = 20,
    lead_ms: int = 60,
    mark_every: int = 5,
) -> CallerStream:
    """Install a caller's media fast paths on `conn`: inbound media (text, or raw binary frames with
    `binary`) into `mic` (`early` frames first, then those queued unread), outbound frames paced from
    `playback` every `frame_ms` (`lead_ms` ahead), a mark every `mark_every` frames."""

def transport_shutdown(grace: float = 1.0) -> None:
    """Close every connection (1001) and stop the runtime; registered with atexit."""

def transport_runtime_running() -> bool:
    """Whether the shared tokio runtime currently exists."""

def scrub_secrets(text: str, secrets: list[str] = ...) -> str:
    """Mask credentials in `text`: each of `secrets`, `Bearer` tokens, `sk-…` keys and
    `openai-insecure-api-key.` subprotocol keys, each replaced by its redacted form (`sk-…wxyz`)."""

# ---------------------------------------------------------------------------
# vad-cli: streaming voice activity detection (rust/src/vad/)
# ---------------------------------------------------------------------------

@final
class VADEvent:
    """A speech boundary found by `VAD`, as sample offsets from the start of the stream."""

    @property
    def kind(self) -> Literal["start", "stop"]:
        """`"start"`: speech began; `"stop"`: it ended (decided after the hangover)."""
    @property
    def sample(self) -> int:
        """Where speech itself starts (its first speech frame) or stops (end of the last one)."""
    @property
    def padded_sample(self) -> int:
        """Where to cut the audio: `sample` minus the prefix padding for a start (never before
        the previous stop), the end of the hangover for a stop."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def time_s(self) -> float:
        """`sample` in seconds."""
    @property
    def padded_time_s(self) -> float:
        """`padded_sample` in seconds."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class VAD:
    """Streaming voice activity detector for mono audio.

    Each `frame_ms` frame is speech when its level is above `threshold_db` (dBFS), at least
    `snr_db` above the noise floor (the quietest frame of the last `noise_window_ms`, so steady
    noise stops counting after one window) and its zero-crossing rate is at most
    `max_zero_crossing_rate` (white noise is ~0.5, voiced speech 0.02-0.2). `frame_ms` is 10,
    20 or 30. Speech starts after `min_speech_ms` of speech frames and stops after `hangover_ms`
    of other frames.

    `push` takes PCM16 bytes or an int16/float32/float64 array, in chunks of any length (the
    events do not depend on the chunking), and returns the events completed by the chunk.
    Floats are converted with the PCM16 rule first. Large chunks release the GIL; steady-state
    pushes allocate nothing but the returned list. One stream per object: a `push` while
    another thread's `push` is running raises RuntimeError. Bad settings raise
    `AudioFormatError`.
    """

    def __new__(
        cls,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        threshold_db: float = -45.0,
        min_speech_ms: int = 100,
        hangover_ms: int = 500,
        prefix_padding_ms: int = 300,
        snr_db: float = 10.0,
        max_zero_crossing_rate: float = 0.4,
        noise_window_ms: int = 1500,
    ) -> Self: ...
    def push(self, samples: bytes | bytearray | memoryview | npt.NDArray[np.generic]) -> list[VADEvent]:
        """Feed a chunk; returns the start/stop events it completed, in order."""
    def flush(self) -> VADEvent | None:
        """End of stream: the stop event of a segment still open (at the current position,
        partial frame included), or None; then reset for a new stream."""
    def reset(self) -> None:
        """Forget the stream: offsets restart at 0 and the noise floor is re-learnt."""
    @property
    def in_speech(self) -> bool:
        """True between a start event and its stop event."""
    @property
    def position(self) -> int:
        """Samples consumed since the start of the stream."""
    @property
    def level_db(self) -> float:
        """Level of the last complete frame, dBFS (digital silence is -120)."""
    @property
    def noise_floor_db(self) -> float:
        """The current noise-floor estimate, dBFS."""
    @property
    def sample_rate(self) -> int: ...
    @property
    def frame_samples(self) -> int:
        """Samples per frame (`sample_rate * frame_ms // 1000`)."""
