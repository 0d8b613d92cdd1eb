"""Per-connection state of :class:`~fastvoice.testing.FakeRealtimeServer`, and what it records."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["ConnectionInfo", "ReceivedFrame"]


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """One text frame received from a client."""

    connection: int
    raw: str
    data: dict[str, Any] | None
    valid: bool
    error: str | None = None
    at: float = 0.0


@dataclass(slots=True)
class ConnectionInfo:
    """What the server saw of one WebSocket connection (the Authorization header is redacted)."""

    index: int
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    input_audio: bytearray = field(default_factory=bytearray)
    committed_audio: int = 0
    """How many bytes of ``input_audio`` (from its start) were committed by ``input_audio_buffer.commit``."""
    closed: bool = False


@dataclass(slots=True)
class Active:
    response_id: str
    task: asyncio.Task[None]
    outputs: list[dict[str, Any]]
    modality: str


@dataclass(slots=True)
class Conn:
    info: ConnectionInfo
    ws: web.WebSocketResponse
    request: web.Request
    session: dict[str, Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    buffer: bytearray = field(default_factory=bytearray)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    audio_sent: dict[str, int] = field(default_factory=dict)
    last_item_id: str | None = None
    active: Active | None = None
    any_audio: bool = False


def default_session(model: str) -> dict[str, Any]:
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if (
            isinstance(value, Mapping)
            and isinstance(base.get(key), dict)
            and key not in ("format", "turn_detection")
        ):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def bytes_per_ms(session: Mapping[str, Any], direction: str) -> float:
    fmt = (session.get("audio") or {}).get(direction, {}).get("format") or {}
    return 8.0 if fmt.get("type") in ("audio/pcmu", "audio/pcma") else 48.0
