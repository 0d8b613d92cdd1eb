"""Shared by the HTTP audio tests: strict validation against the `openai` types, the speech SSE event
models the `openai` package lacks, OpenAI's error shape, audio helpers and a light-engines server."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import numpy as np
import openai
import pydantic
from _data import data_path
from fastvoice import audio
from fastvoice.serve import RealtimeServer
from openai.types import ErrorObject

RATE = 24000


class SpeechDelta(pydantic.BaseModel, extra="forbid"):
    type: Literal["speech.audio.delta"]
    audio: str


class SpeechUsage(pydantic.BaseModel, extra="forbid"):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class SpeechDone(pydantic.BaseModel, extra="forbid"):
    type: Literal["speech.audio.done"]
    usage: SpeechUsage


def strict(model: type[pydantic.BaseModel], data: Any) -> Any:
    """``data`` validated as ``model``, and no field the type does not declare (openai's models allow extras,
    so they are looked for by hand, at every level)."""
    parsed = model.model_validate(data)

    def walk(value: Any, where: str) -> None:
        if isinstance(value, pydantic.BaseModel):
            assert not value.model_extra, f"{where}: undeclared fields {sorted(value.model_extra or {})}"
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{where}.{name}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    walk(parsed, model.__name__)
    return parsed


def check_error(status: int, body: Any, expect: int, param: str | None = None) -> dict[str, Any]:
    assert status == expect, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    strict(ErrorObject, error)
    assert error["message"] and error["param"] == param, error
    assert error["type"] == ("invalid_request_error" if expect < 500 else "server_error")
    return dict(error)


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def recording(name: str) -> bytes:
    return data_path(name).read_bytes()


def pcm24k(name: str) -> bytes:
    """A recording as PCM16 mono 24 kHz (what a raw upload is)."""
    wav = audio.wav_decode(recording(name))
    mono = audio.to_mono(wav.pcm16, wav.channels) if wav.channels > 1 else wav.pcm16
    return bytes(audio.to_pcm16(audio.resample(np.frombuffer(mono, "<i2"), wav.sample_rate, RATE)))


def wav_file(x: np.ndarray, rate: int, kind: str, channels: int = 1) -> bytes:
    """A WAV of float samples ``x`` in [-1, 1) (interleaved), encoded here independently of fastvoice."""
    tag, bits = {
        "u8": (1, 8),
        "s16": (1, 16),
        "s24": (1, 24),
        "s32": (1, 32),
        "f32": (3, 32),
        "f64": (3, 64),
    }[kind.removeprefix("ext-")]
    if kind.endswith("u8"):
        data = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif kind.startswith(("f", "ext-f")):
        data = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    else:
        full = np.clip(np.round(x * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype("<i4")
        data = full.astype("<i2").tobytes() if bits == 16 else full.tobytes()
        if bits == 24:  # the low three bytes of each little-endian int32
            data = full.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    align = channels * bits // 8
    if kind.startswith("ext-"):
        guid = struct.pack("<I", tag) + bytes.fromhex("000010008000 00aa00389b71".replace(" ", ""))
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[RealtimeServer]:
    kwargs.setdefault("engines", "light")
    async with RealtimeServer(**kwargs) as server:
        yield server
    assert server.errors == []


def client(server: RealtimeServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)


async def post_form(
    http: aiohttp.ClientSession,
    server: RealtimeServer,
    file: bytes | None,
    filename: str = "a.wav",
    **fields: Any,
) -> tuple[int, Any, str]:
    form = aiohttp.FormData(default_to_multipart=True)
    if file is not None:
        form.add_field(
            "file",
            io.BytesIO(file),
            filename=filename,
            content_type=fields.pop("content_type", "application/octet-stream"),
        )
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            form.add_field(key.replace("__", "[]"), str(v))
    async with http.post(server.base_url + "/audio/transcriptions", data=form) as r:
        text = await r.text()
        ctype = r.content_type
    return r.status, (json.loads(text) if ctype == "application/json" else None), text
