"""Twilio's side of a Media Streams call, written from Twilio's public protocol, for tests and benches.

A real WebSocket client (``websockets``) that sends ``connected``, ``start``, 20 ms ``media`` frames of
μ-law at real time, ``dtmf`` and ``stop``, and plays what the server sends the way Twilio does: media
frames queue for playback at real time, a ``mark`` is sent back when the audio queued before it has
played, and ``clear`` drops the queue and sends back every pending mark at once. Every server frame is
checked against the protocol (``event`` one of media/mark/clear, the right ``streamSid``, base64 μ-law).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field

import numpy as np
import websockets
from _data import data_path
from fastvoice import audio

FRAME = 160  # 20 ms of 8 kHz μ-law


def clip_ulaw(name: str) -> bytes:
    """A tests/data clip as 8 kHz μ-law, what a phone line carries."""
    wav = audio.wav_decode(data_path(name).read_bytes())
    mono = audio.to_mono(audio.from_pcm16(bytes(wav.pcm16), "float32"), wav.channels)
    pcm8 = audio.to_pcm16(audio.resample(mono, wav.sample_rate, 8000))
    return bytes(audio.ulaw_encode(bytes(pcm8)))


def ulaw_to_pcm24k(ulaw: bytes) -> bytes:
    pcm8 = audio.from_pcm16(bytes(audio.ulaw_decode(ulaw)), "float32")
    return bytes(audio.to_pcm16(audio.resample(pcm8, 8000, 24000)))


def level(ulaw: bytes) -> float:
    """RMS of decoded μ-law, 0..1."""
    if not ulaw:
        return 0.0
    pcm = np.frombuffer(bytes(audio.ulaw_decode(ulaw)), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2)) / 32768.0)


@dataclass
class Received:
    """What the server sent, with arrival times (time.monotonic())."""

    media: list[tuple[float, bytes]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def audio(self) -> bytes:
        return b"".join(p for _, p in self.media)


class TwilioCaller:
    def __init__(
        self,
        url: str,
        *,
        stream_sid: str = "MZ00000000000000000000000000000001",
        call_sid: str = "CA00000000000000000000000000000001",
        parameters: dict[str, str] | None = None,
        play: bool = True,
    ) -> None:
        self.url = url
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.parameters = parameters or {}
        self.play = play
        self.rx = Received()
        self.played = bytearray()  # what the simulated phone played, in order
        self.acked: list[str] = []
        self._queue: list[bytes | str] = []  # audio chunks and mark names, in arrival order
        self._seq = 0
        self._chunk = 0
        self._ws: websockets.ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    async def __aenter__(self) -> TwilioCaller:
        self._ws = await websockets.connect(self.url, max_size=None)
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": "AC00000000000000000000000000000001",
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            }
        )
        self._tasks.append(asyncio.create_task(self._receive()))
        if self.play:
            self._tasks.append(asyncio.create_task(self._player()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    async def _send(self, msg: dict[str, object]) -> None:
        assert self._ws is not None
        self._seq += 1
        msg = {**msg, "sequenceNumber": str(self._seq)}
        await self._ws.send(json.dumps(msg))

    async def speak(self, ulaw: bytes, *, silence_after: float = 0.0) -> None:
        """Send ``ulaw`` (then ``silence_after`` seconds of line silence) as 20 ms frames at real time."""
        data = ulaw + b"\xff" * int(silence_after * 8000)
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(data), FRAME)):
            self._chunk += 1
            payload = base64.b64encode(data[i : i + FRAME]).decode()
            await self._send(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(self._chunk),
                        "timestamp": str(self._chunk * 20),
                        "payload": payload,
                    },
                }
            )
            # Paced on the clock (not sleep-by-sleep), so late wake-ups do not slow the line down.
            delay = t0 + (k + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def dtmf(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self) -> None:
        await self._send(
            {
                "event": "stop",
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC00000000000000000000000000000001", "callSid": self.call_sid},
            }
        )

    async def drop(self) -> None:
        """The socket goes away without a stop (a network failure)."""
        assert self._ws is not None
        self._ws.transport.abort()

    async def _ack(self, name: str) -> None:
        self.acked.append(name)
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                now = time.monotonic()
                if not isinstance(raw, str):
                    self.rx.errors.append("binary frame")
                    continue
                msg = json.loads(raw)
                event = msg.get("event")
                if msg.get("streamSid") != self.stream_sid:
                    self.rx.errors.append(f"wrong streamSid in {raw[:80]}")
                if event == "media":
                    payload = base64.b64decode(msg["media"]["payload"], validate=True)
                    if set(msg) != {"event", "streamSid", "media"} or set(msg["media"]) != {"payload"}:
                        self.rx.errors.append(f"unexpected members in {raw[:80]}")
                    self.rx.media.append((now, payload))
                    self._queue.append(payload)
                elif event == "mark":
                    name = msg["mark"]["name"]
                    self.rx.marks.append((now, name))
                    if self.play:
                        self._queue.append(name)
                    else:
                        await self._ack(name)
                elif event == "clear":
                    self.rx.clears.append(now)
                    pending = [m for m in self._queue if isinstance(m, str)]
                    self._queue.clear()
                    for name in pending:  # Twilio sends back the marks it will never reach
                        await self._ack(name)
                else:
                    self.rx.errors.append(f"unknown event {event!r}")
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def _player(self) -> None:
        """Play queued audio at real time, 20 ms per tick; acknowledge marks as they are reached."""
        t_next = time.monotonic()
        while True:
            budget = FRAME
            while self._queue and budget > 0:
                head = self._queue[0]
                if isinstance(head, str):
                    self._queue.pop(0)
                    await self._ack(head)
                    continue
                take = head[:budget]
                self.played += take
                budget -= len(take)
                if len(take) == len(head):
                    self._queue.pop(0)
                else:
                    self._queue[0] = head[len(take) :]
            while self._queue and isinstance(self._queue[0], str):  # marks right after the audio
                await self._ack(self._queue.pop(0))  # type: ignore[arg-type]
            t_next += 0.02
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
