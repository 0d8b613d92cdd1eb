"""The asyncio side of a connection: awaiting, iteration and the context manager.

Every method first tries the non-blocking native call; only when that reports "nothing yet" (and
has armed a wake-up under the same lock) does it await the loop's `LoopWaker`. Messages already
queued in Rust are therefore returned without any thread hop, and a cancelled `recv()` loses
nothing because messages stay in the Rust queue until a call takes them.
"""

from __future__ import annotations

import types
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Self, TypeAlias

from fastvoice import _fastvoice
from fastvoice._fastvoice import AudioDelta, RingBuffer
from fastvoice.transport._errors import ConnectionClosedOK
from fastvoice.transport._loop import LoopWaker, loop_waker

#: What `recv()` returns: text frames as `str`, binary frames as `bytes`, and with
#: `decode_audio=True` audio-delta events as `fastvoice.audio.AudioDelta`.
Message: TypeAlias = str | bytes | AudioDelta

__all__ = ["Connection", "connect"]

Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]


def _url_for_display(url: str) -> str:
    # The query may carry credentials (e.g. `?api-key=`): never show it.
    return url.split("?", 1)[0].split("#", 1)[0]


class Connection:
    """An open WebSocket connection. Create it with `await connect(...)`."""

    __slots__ = ("_id", "_native", "_url", "_waker")

    def __init__(self, native: _fastvoice.TransportConnection, waker: LoopWaker, url: str) -> None:
        self._native = native
        self._waker = waker
        self._id = native.id
        self._url = _url_for_display(url)

    def __repr__(self) -> str:
        state = "closed" if self._native.closed else "open"
        return f"<fastvoice.transport.Connection {self._url} {state}>"

    async def recv(self) -> Message:
        """The next message: `str` (text), `bytes` (binary) or `AudioDelta` (with `decode_audio`).

        Raises `ConnectionClosedOK`/`ConnectionClosedError` once the connection has ended and every
        message received before that has been returned.
        """
        native = self._native
        while True:
            msg = native.recv_one()
            if msg is not None:
                return msg
            await self._waker.wait(self._id)

    async def recv_batch(self, max_n: int = 1024) -> list[Message]:
        """Every message already received (at least one, at most `max_n`), with one wake-up."""
        native = self._native
        while True:
            batch = native.recv_batch(max_n)
            if batch is not None:
                return batch
            await self._waker.wait(self._id)

    async def send_text(self, text: str) -> None:
        """Queue a text frame; waits only while the send queue is full."""
        native = self._native
        while not native.send_text(text):
            await self._waker.wait(self._id)

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary frame; waits only while the send queue is full."""
        native = self._native
        while not native.send_bytes(data):
            await self._waker.wait(self._id)

    async def send_audio(self, pcm16: Any) -> None:
        """Send PCM16 audio (bytes or an int16 array) as an `input_audio_buffer.append` event.

        The JSON text frame is built natively, byte-identical to
        `json.dumps({"type": "input_audio_buffer.append", "audio": base64(pcm)})` without spaces.
        """
        native = self._native
        while not native.send_audio(pcm16):
            await self._waker.wait(self._id)

    # ---- native audio I/O: ring buffers to and from the wire, no Python per chunk

    def set_audio_output(
        self, ring: RingBuffer | None, encoding: str = "pcm16", *, codes: bool = False
    ) -> None:
        """Write audio-delta frames straight into ``ring`` (decoded natively; ``encoding`` is the wire
        format: ``pcm16``, ``pcmu`` or ``pcma``) instead of delivering them. The first delta of each
        item still arrives (as an `AudioDelta` with empty audio) so the reader knows an item started.
        ``None`` restores normal delivery. ``codes=True`` keeps G.711 codes as they are, one per int16
        slot, for a native reader that forwards them."""
        self._native.set_audio_output(ring, encoding, codes=codes)

    def audio_output_state(self) -> tuple[str, int, str, int, int] | None:
        """``(item_id, content_index, response_id, received_bytes, ring_start)`` of the item the output
        ring is being filled with, or ``None``."""
        return self._native.audio_output_state()

    def cut_audio_output(self, discard_response: str | None = None) -> tuple[str, int, str, int, int] | None:
        """Atomically end the current output item: clear the ring, drop further deltas of its response
        (and of ``discard_response``); returns the item's state as `audio_output_state` did."""
        return self._native.cut_audio_output(discard_response)

    def reset_audio_output(self) -> None:
        """Forget the current output item without touching the ring."""
        self._native.reset_audio_output()

    def set_audio_input(
        self,
        ring: RingBuffer | None,
        *,
        encoding: str = "pcm16",
        sample_rate: int = 24000,
        chunk_ms: float = 20.0,
        pace: bool = False,
        retain_bytes: int | None = None,
        codes: bool = False,
    ) -> None:
        """Send what ``ring`` holds (samples at ``sample_rate``) as ``input_audio_buffer.append`` frames
        of at most ``chunk_ms``, every ``chunk_ms``, from the connection's native task: everything
        available at each tick, or with ``pace=True`` at most real time (for pre-recorded audio).
        ``None`` stops. ``retain_bytes``: also keep up to that many bytes of what was sent (oldest
        dropped first, counted) for `take_audio_input_retained`, so it can be re-sent elsewhere.
        ``codes=True``: the ring holds G.711 codes (one per int16 slot) to send unchanged."""
        self._native.set_audio_input(ring, encoding, sample_rate, chunk_ms, pace, retain_bytes, codes=codes)

    def flush_audio_input(self) -> int:
        """Queue everything the input ring holds now, ahead of anything sent later (e.g. a commit);
        returns the number of samples queued."""
        return self._native.flush_audio_input()

    @property
    def audio_input_sent(self) -> int:
        """Samples the input pump has sent on this connection."""
        return self._native.audio_input_sent

    @property
    def audio_output_dropped(self) -> int:
        """Bytes of output audio not written to the ring (interrupted responses, ring overflow)."""
        return self._native.audio_output_dropped

    @property
    def audio_output_received(self) -> int:
        """Bytes of output audio the native sink decoded on this connection (written to the ring, dropped as
        interrupted or refused by the ring; invalid deltas, delivered as text, are not counted)."""
        return self._native.audio_output_received

    def take_audio_input_retained(self) -> tuple[bytes, int]:
        """``(audio, evicted)``: the wire audio the input pump sent since the last call (kept under
        ``set_audio_input(retain_bytes=...)``) and how many bytes did not fit; both are reset."""
        return self._native.take_audio_input_retained()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with `code` and `reason`; returns when the closing handshake is over (bounded by
        `close_timeout`). Calling it again, or after the peer closed, returns at once."""
        native = self._native
        native.close(code, reason)
        while native.wait_end() is None:
            await self._waker.wait(self._id)

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (a close frame was exchanged or the transport was lost)."""
        return self._native.closed

    @property
    def close_code(self) -> int | None:
        """The close code once closed (from the peer's close frame; 1006 if the connection was lost)."""
        return self._native.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason once closed."""
        return self._native.close_reason

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.close()


class _Connect:
    """What `connect()` returns: await it, or use it as `async with connect(...) as conn`."""

    __slots__ = ("_args", "_conn", "_url")

    def __init__(self, url: str, args: dict[str, Any]) -> None:
        self._url = url
        self._args = args
        self._conn: Connection | None = None

    def __repr__(self) -> str:
        return f"<fastvoice.transport.connect {_url_for_display(self._url)}>"

    async def _open(self) -> Connection:
        waker = loop_waker()
        args = dict(self._args)
        headers = args.pop("headers")
        pending = _fastvoice.transport_connect(self._url, headers, waker.native, **args)
        try:
            while True:
                native = pending.result()
                if native is not None:
                    return Connection(native, waker, self._url)
                await waker.wait(pending.id)
        except BaseException:
            pending.cancel()
            raise

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()


def _header_list(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        out.append((name, value))
    return out


def connect(
    url: str,
    *,
    headers: Headers | None = None,
    open_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float = 20.0,
    close_timeout: float = 10.0,
    max_message_size: int = 16 * 2**20,
    max_queue: int = 1024,
    max_queue_bytes: int = 8 * 2**20,
    ca_file: str | None = None,
    allow_insecure_ws: bool = False,
    decode_audio: bool = False,
) -> _Connect:
    """Open a WebSocket client connection (`await connect(...)` or `async with connect(...)`).

    - `headers` are sent as given (e.g. `{"Authorization": "Bearer ..."}`); their values never
      appear in any repr, log or error.
    - `open_timeout` bounds DNS + TCP + TLS + upgrade; `close_timeout` bounds the closing handshake.
    - Keepalive: a ping every `ping_interval` seconds (`None` disables it); no pong within
      `ping_timeout` closes the connection with code 1006.
    - `max_message_size` bounds incoming and outgoing messages (`MessageTooBig`).
    - `max_queue` / `max_queue_bytes` bound each direction's queue: when Python does not read,
      the transport stops reading the socket (TCP backpressure); `send_*` waits when full.
    - TLS verification is always on (webpki roots); `ca_file` (PEM) adds trusted CAs.
    - `ws://` is refused for non-loopback hosts unless `allow_insecure_ws=True`.
    - `HTTPS_PROXY` (wss) / `HTTP_PROXY` (ws) and `NO_PROXY` (hosts, `.domain` suffixes, IPs, CIDR
      blocks, `host:port`, `*`) are honoured via HTTP CONNECT, as curl and requests read them. Loopback
      hosts are never proxied, and plain `ws://` through a non-loopback proxy is refused like `ws://`
      to a non-loopback host (the proxy would read the key) unless `allow_insecure_ws=True`.
    - `decode_audio=True` turns audio-delta events into `fastvoice.audio.AudioDelta` objects.
    """
    args: dict[str, Any] = {
        "headers": _header_list(headers),
        "open_timeout": float(open_timeout),
        "ping_interval": None if ping_interval is None else float(ping_interval),
        "ping_timeout": float(ping_timeout),
        "close_timeout": float(close_timeout),
        "max_message_size": int(max_message_size),
        "max_queue": int(max_queue),
        "max_queue_bytes": int(max_queue_bytes),
        "ca_file": None if ca_file is None else str(ca_file),
        "allow_insecure_ws": bool(allow_insecure_ws),
        "decode_audio": bool(decode_audio),
    }
    return _Connect(url, args)
