"""``POST /v1/audio/speech``, spoken by the server's offline voice and streamed as it is synthesised.

The body is OpenAI's JSON (checked against ``openai.types.audio.SpeechCreateParams``; ``null`` stands for an
absent field, as openai-agents sends ``instructions``): ``model`` (any name), ``voice`` (one of OpenAI's
built-in voices, each with an offline voice; custom voices are refused), ``input`` (1-4096 characters),
``speed`` (0.25-4.0), ``instructions`` (accepted; neither offline voice can follow them),
``response_format`` ``pcm`` (PCM16 mono 24 kHz) or ``wav`` (the same behind a 44-byte header whose sizes are
0xFFFFFFFF, the streaming convention, since the length is unknown when it is sent); ``wav`` when absent
(OpenAI's default, mp3, has no encoder here). ``stream_format``: ``audio`` (the bytes, chunked as they are
made) or ``sse`` (``speech.audio.delta`` events of base64 audio, then ``speech.audio.done`` with usage
estimated at 4 characters a text token and 20 audio tokens a second).

The first chunk is synthesised before the headers go out, so an engine that fails at once is an HTTP error;
a failure later cuts the audio stream (no final chunk, so the client sees an incomplete body, not a short
file) or ends the SSE stream with an ``error`` event.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from fastvoice.serve.access import http_error
from fastvoice.serve.api import ApiContext, end_stream_with_error, invalid
from fastvoice.serve.api import sse as sse_event
from fastvoice.testing.openai_server import validate_request
from fastvoice.voice.config import VOICES

__all__ = ["speech"]

logger = logging.getLogger("fastvoice.serve")

RATE = 24000
MAX_INPUT = 4096
MAX_BODY = 1024 * 1024  # far above 4096 characters of input and instructions
SPEED_RANGE = (0.25, 4.0)
FORMATS = ("pcm", "wav")
AUDIO_TOKENS_PER_S = 20  # the Realtime API's rate for model audio, used as the estimate here
_REQUIRED = ("model", "voice", "input")
_KNOWN = frozenset({"model", "voice", "input", "instructions", "response_format", "speed", "stream_format"})


def wav_stream_header(rate: int = RATE) -> bytes:
    """A PCM16 mono WAV header for a stream of unknown length (RIFF and data sizes 0xFFFFFFFF)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + (struct.pack("<I", 0xFFFFFFFF))
    )


async def _body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _TooLarge
    buf = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > MAX_BODY:
            raise _TooLarge
    return json.loads(buf)


class _TooLarge(Exception):
    pass


class _Invalid(Exception):
    def __init__(self, message: str, param: str | None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def _check(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Invalid("The request body must be a JSON object.", None)
    body: dict[str, Any] = {k: v for k, v in raw.items() if v is not None}
    for key in body:
        if key not in _KNOWN:
            raise _Invalid(
                f"Unrecognized request argument supplied: {key[:100]}", key[:100], "unknown_parameter"
            )
    for key in _REQUIRED:
        if key not in body:
            raise _Invalid(f"Missing required parameter: '{key}'.", key, "missing_required_parameter")
    try:
        validate_request("speech", body, _REQUIRED)
    except ValueError as exc:
        where = str(exc).split(":")[0].split(".")[0]
        raise _Invalid(f"Invalid request: {exc}", where if where in _KNOWN else None) from None
    text = body["input"]
    if not text.strip():
        raise _Invalid("Invalid 'input': there is no text to speak.", "input", "empty_string")
    if len(text) > MAX_INPUT:
        raise _Invalid(
            f"Invalid 'input': string too long. Expected a string with maximum length {MAX_INPUT}, but got a "
            f"string with length {len(text)} instead.",
            "input",
            "string_above_max_length",
        )
    voice = body["voice"]
    if voice not in VOICES:
        what = "custom voices are not available offline" if isinstance(voice, dict) else repr(voice)[:100]
        raise _Invalid(f"Invalid 'voice': {what}. Expected one of {', '.join(VOICES)}.", "voice")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not math.isfinite(speed) or not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise _Invalid(
            f"Invalid 'speed': {speed!r}. Expected a value between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}.",
            "speed",
        )
    fmt = body.setdefault("response_format", "wav")
    if fmt not in FORMATS:
        raise _Invalid(
            f"Invalid 'response_format': {fmt!r}. This offline server sends 'wav' or 'pcm' (PCM16 mono "
            "24 kHz); it has no encoder for compressed formats.",
            "response_format",
        )
    body["speed"] = float(speed)
    return body


async def speech(ctx: ApiContext, request: web.Request) -> web.StreamResponse:
    try:
        body = _check(await _body(request))
    except _TooLarge:
        return http_error(
            413,
            f"The request body is too large: at most {MAX_BODY} bytes.",
            type="invalid_request_error",
            code="request_too_large",
        )
    except (ValueError, UnicodeDecodeError):
        return invalid("We could not parse the JSON body of your request.", None, None)
    except _Invalid as exc:
        return invalid(str(exc), exc.param, exc.code)
    sse = body.get("stream_format", "audio") == "sse"
    wav = body["response_format"] == "wav"
    chunks = aiter(ctx.engines.speak(body["input"], body["voice"], body["speed"]))
    try:
        return await _send(request, body, chunks, sse=sse, wav=wav)
    finally:
        close = getattr(chunks, "aclose", None)  # stops the synthesis when the client went away
        if close is not None:
            await close()


async def _send(
    request: web.Request, body: dict[str, Any], chunks: AsyncIterator[bytes], *, sse: bool, wav: bool
) -> web.StreamResponse:
    # The first chunk is made before the headers go out: an engine failing at once is still an HTTP 500.
    chunk = await anext(chunks, None)
    content_type = "text/event-stream" if sse else "audio/wav" if wav else "audio/pcm"
    resp = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    async def send(data: bytes) -> None:
        if sse:
            data = sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
        await resp.write(data)

    samples = 0
    prefix = wav_stream_header() if wav else b""
    try:
        while chunk is not None:
            samples += len(chunk) // 2
            if data := prefix + chunk:
                await send(data)
            prefix = b""
            chunk = await anext(chunks, None)
        if prefix:  # nothing was spoken (punctuation only, say): the header alone
            await send(prefix)
    except ConnectionResetError:
        raise
    except Exception as exc:
        logger.exception("speech synthesis failed after the response started")
        if not sse:
            if request.transport is not None:
                request.transport.abort()  # no last chunk: the client sees a cut body, not a short file
            return resp
        return await end_stream_with_error(resp, f"Speech synthesis failed: {exc}")
    if sse:
        text_tokens = math.ceil((len(body["input"]) + len(body.get("instructions", ""))) / 4)
        audio_tokens = math.ceil(samples / RATE * AUDIO_TOKENS_PER_S)
        usage = {
            "input_tokens": text_tokens,
            "output_tokens": audio_tokens,
            "total_tokens": text_tokens + audio_tokens,
        }
        await resp.write(sse_event({"type": "speech.audio.done", "usage": usage}))
    await resp.write_eof()
    return resp
