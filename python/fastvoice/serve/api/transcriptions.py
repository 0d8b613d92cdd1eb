"""``POST /v1/audio/transcriptions``, answered by the server's offline recogniser.

The request is OpenAI's multipart form: ``file`` and ``model`` (any name: every model is the same
engine), ``language`` (English only: both recognisers are English models), ``prompt`` (previous text for
Whisper; the light engine has no use for it), ``response_format`` (``json``, ``text``, ``srt``,
``verbose_json``, ``vtt``), ``timestamp_granularities[]`` (``segment``, ``word``: both engines time their
words), ``stream`` (server-sent ``transcript.text.delta`` events, one per segment as its piece is
recognised, then ``transcript.text.done``). ``temperature``, ``include[]``, ``chunking_strategy`` and the
``gpt-transcribe`` hints are checked and accepted, with no effect offline. Audio: see :mod:`._clip`.

The audio is cut at pauses of half a second or more (:func:`._clip.speech_spans`); stretches are heard
together in pieces of up to 28 s (the text so far as Whisper's prompt), so a stream starts after the first
piece; each piece's timed words are shared out to its stretches, which are the segments. Segment fields
the engines have no figure for are neutral: ``avg_logprob``, ``no_speech_prob`` and ``temperature``
0.0, ``tokens`` empty; ``compression_ratio`` is the text's own. Usage: ``duration`` usage is the audio's
length; token usage (streamed ``done``) is estimated at 10 audio tokens a second and 4 characters a token.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import BodyPartReader, web

from fastvoice.serve.api import MAX_BODY_BYTES, ApiContext, end_stream_with_error, invalid, sse
from fastvoice.serve.api._clip import STT_RATE, Clip, UploadError, decode_upload, speech_spans
from fastvoice.serve.engines import TimedWord

__all__ = ["transcriptions"]

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_SCALARS = frozenset({"model", "language", "prompt", "response_format", "temperature", "stream"})
_ARRAYS = frozenset(
    {
        "include",
        "timestamp_granularities",
        "keywords",
        "languages",
        "known_speaker_names",
        "known_speaker_references",
    }
)
_MAX_FIELD = 64 * 1024  # a text field; the file alone may be large
_CHUNK = 28 * STT_RATE  # samples: stretches of speech heard together
_MARGIN = STT_RATE
_PROMPT_CONTEXT = 800  # characters of earlier text handed to Whisper (its prompt keeps the last 223 tokens)
_PUNCTUATION = '.,!?;:"()[]…'  # kept in segment text, not in words (as OpenAI's words come)
AUDIO_TOKENS_PER_S = 10  # the Realtime API's rate for user audio, used as the estimate here


class BadRequest(Exception):
    """A 400 to answer with."""

    def __init__(self, message: str, param: str | None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(slots=True)
class Upload:
    data: bytearray
    filename: str | None
    content_type: str | None


@dataclass(slots=True)
class Form:
    scalars: dict[str, str]
    arrays: dict[str, list[str]]
    file: Upload | None


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str
    words: list[TimedWord] | None


def _too_large() -> NoReturn:
    raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=MAX_BODY_BYTES + 1)


async def _read_form(request: web.Request) -> Form:
    """The multipart form, the file read straight into one buffer; OpenAI's 25 MB limit on the whole body
    (aiohttp's own limit does not cover a streamed multipart read)."""
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            f"Expected a multipart/form-data body (got {request.content_type or 'none'!r}), as OpenAI's "
            "clients send: a 'file' part and a 'model' field.",
            None,
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        _too_large()
    form = Form({}, {}, None)
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Nested multipart bodies are not accepted.", None)
            name = part.name or ""
            buf = bytearray()
            limit = MAX_BODY_BYTES if name == "file" else _MAX_FIELD
            while chunk := await part.read_chunk(256 * 1024):
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    _too_large()
                if len(buf) + len(chunk) > limit:
                    raise BadRequest(f"The field '{name[:100]}' is longer than {limit} bytes.", name[:100])
                buf += chunk
            _add(form, name, buf, part)
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise BadRequest(f"The multipart body could not be parsed: {exc}", None) from None
    return form


def _add(form: Form, name: str, buf: bytearray, part: BodyPartReader) -> None:
    if name == "file":
        if form.file is not None:
            raise BadRequest("Only one 'file' may be sent.", "file")
        form.file = Upload(buf, part.filename, part.headers.get("Content-Type"))
        return
    try:
        value = buf.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"The field '{name[:100]}' is not UTF-8 text.", name[:100]) from None
    key = name.removesuffix("[]")
    if key in _ARRAYS:
        form.arrays.setdefault(key, []).append(value)
    elif name.startswith("chunking_strategy"):
        pass  # "auto" or a server_vad object (sent as chunking_strategy[type]...): cutting at pauses is ours
    elif name in _SCALARS:
        if name in form.scalars:
            raise BadRequest(f"The field '{name}' was sent more than once.", name)
        form.scalars[name] = value
    else:
        raise BadRequest(
            f"Unrecognized request argument supplied: {name[:100]}", name[:100], "unknown_parameter"
        )


def _english(value: str, param: str) -> None:
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if code not in ("en", "eng", "english"):
        raise BadRequest(
            f"Invalid '{param}': {value[:50]!r}. The offline recognisers transcribe English only ('en').",
            param,
        )


@dataclass(frozen=True, slots=True)
class Params:
    response_format: str
    stream: bool
    prompt: str | None
    words: bool
    segments: bool


def _params(form: Form) -> Params:
    s = form.scalars
    if form.file is None:
        raise BadRequest("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    if not s.get("model", "").strip():
        raise BadRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    fmt = s.get("response_format", "json")
    if fmt not in FORMATS:
        why = "speaker diarisation is not available offline" if fmt == "diarized_json" else "unknown format"
        raise BadRequest(
            f"Invalid 'response_format': {fmt[:50]!r} ({why}). Expected one of {', '.join(FORMATS)}.",
            "response_format",
        )
    stream_value = s.get("stream", "false").strip().lower()
    if stream_value not in ("true", "false", "1", "0"):
        raise BadRequest(f"Invalid 'stream': {stream_value[:20]!r}. Expected true or false.", "stream")
    stream = stream_value in ("true", "1")
    if stream and fmt not in ("json", "text"):
        raise BadRequest(
            f"'stream' sends transcript.text events: it goes with response_format json or text, not {fmt}.",
            "stream",
        )
    if "temperature" in s:
        try:
            temperature = float(s["temperature"])
        except ValueError:
            temperature = math.nan
        if not 0.0 <= temperature <= 1.0:
            raise BadRequest(
                f"Invalid 'temperature': {s['temperature'][:20]!r}. Expected a number from 0 to 1.",
                "temperature",
            )
    if "language" in s:
        _english(s["language"], "language")
    for value in form.arrays.get("languages", []):
        _english(value, "languages")
    for value in form.arrays.get("include", []):
        if value != "logprobs":
            raise BadRequest(f"Invalid 'include': {value[:50]!r}. Expected 'logprobs'.", "include")
    grains = form.arrays.get("timestamp_granularities", [])
    for value in grains:
        if value not in ("word", "segment"):
            raise BadRequest(
                f"Invalid 'timestamp_granularities': {value[:50]!r}. Expected 'word' or 'segment'.",
                "timestamp_granularities",
            )
    if grains and fmt != "verbose_json":
        raise BadRequest(
            "'timestamp_granularities' needs response_format verbose_json.", "timestamp_granularities"
        )
    return Params(fmt, stream, s.get("prompt") or None, "word" in grains, not grains or "segment" in grains)


def _chunks(spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Consecutive stretches of speech grouped into pieces of at most ~28 s (one Whisper window), so each
    is heard with the words around it (tiny.en heard a lone "Hello there." as "Hello Nearer.")."""
    chunks: list[list[tuple[int, int]]] = []
    for span in spans:
        if chunks and span[1] - chunks[-1][0][0] <= _CHUNK:
            chunks[-1].append(span)
        else:
            chunks.append([span])
    return chunks


def _split(spans: list[tuple[int, int]], words: list[TimedWord]) -> list[Segment]:
    """A piece's words shared out to its stretches of speech (each to the one it overlaps most)."""
    bounds = [(a / STT_RATE, b / STT_RATE) for a, b in spans]
    groups: list[list[TimedWord]] = [[] for _ in spans]
    for word in words:
        _, a, b = word
        best = max(range(len(bounds)), key=lambda k: (min(b, bounds[k][1]) - max(a, bounds[k][0]), -k))
        groups[best].append(word)
    out = []
    for (start, end), group in zip(bounds, groups, strict=True):
        if group:
            timed = [
                (w, round(min(max(a, start), end), 3), round(min(max(b, start), end), 3)) for w, a, b in group
            ]
            out.append(Segment(round(start, 3), round(end, 3), " ".join(w for w, _, _ in group), timed))
    return out


async def _segments(ctx: ApiContext, clip: Clip, prompt: str | None) -> AsyncIterator[Segment]:
    """The clip's speech as segments, one piece of it recognised at a time (with the text so far as
    Whisper's prompt)."""
    spans = await asyncio.to_thread(speech_spans, clip.pcm16)
    chunks = _chunks(spans)
    context = prompt or ""
    total = len(clip.pcm16) // 2
    for i, chunk in enumerate(chunks):
        # Heard with up to a second of the quiet around it (not past half-way to the next piece): Whisper
        # lost its capitals and punctuation on audio trimmed close to the speech.
        before = (chunks[i - 1][-1][1] + chunk[0][0]) // 2 if i else 0
        after = (chunk[-1][1] + chunks[i + 1][0][0]) // 2 if i + 1 < len(chunks) else total
        start, end = max(before, chunk[0][0] - _MARGIN), min(after, chunk[-1][1] + _MARGIN)
        pcm = clip.pcm16[2 * start : 2 * end]
        text, words = await ctx.engines.transcribe_words(pcm, STT_RATE, context[-_PROMPT_CONTEXT:] or None)
        text = text.strip()
        if not text:
            continue
        t0 = start / STT_RATE
        if words:
            for seg in _split(chunk, [(w, t0 + a, t0 + b) for w, a, b in words]):
                yield seg
        else:  # an engine that times no words: the piece is one segment
            yield Segment(round(t0, 3), round(end / STT_RATE, 3), text, None)
        context = f"{context} {text}".strip()


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _stamp(seconds: float, comma: bool) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


def _subtitles(segments: list[Segment], srt: bool) -> str:
    cues = []
    for i, seg in enumerate(segments, 1):
        span = f"{_stamp(seg.start, srt)} --> {_stamp(seg.end, srt)}"
        cues.append(f"{i}\n{span}\n{seg.text}\n" if srt else f"{span}\n{seg.text}\n")
    return "\n".join(cues) if srt else "WEBVTT\n\n" + "\n".join(cues)


def _verbose(segments: list[Segment], text: str, duration: float, params: Params) -> dict[str, Any]:
    body: dict[str, Any] = {"language": "english", "duration": round(duration, 3), "text": text}
    if params.segments:
        body["segments"] = [
            {
                "id": i,
                "seek": round(seg.start * 100),  # in 10 ms mel frames, as Whisper counts
                "start": seg.start,
                "end": seg.end,
                "text": seg.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": round(len(raw := seg.text.encode()) / len(zlib.compress(raw)), 3),
                "no_speech_prob": 0.0,
            }
            for i, seg in enumerate(segments)
        ]
    if params.words and all(seg.words is not None for seg in segments):  # else the engine times no words
        body["words"] = [
            {"word": bare, "start": a, "end": b}
            for seg in segments
            for w, a, b in seg.words or ()
            if (bare := w.strip(_PUNCTUATION))
        ]
    body["usage"] = {"type": "duration", "seconds": round(duration, 3)}
    return body


async def _stream(request: web.Request, ctx: ApiContext, clip: Clip, params: Params) -> web.StreamResponse:
    segments = aiter(_segments(ctx, clip, params.prompt))
    # The first stretch is recognised before the headers go out, so a failing engine is still an HTTP 500.
    first = await anext(segments, None)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    texts: list[str] = []
    try:
        seg = first
        while seg is not None:
            await resp.write(
                sse({"type": "transcript.text.delta", "delta": (" " if texts else "") + seg.text})
            )
            texts.append(seg.text)
            seg = await anext(segments, None)
    except Exception as exc:  # after the headers: the stream's own error event, as OpenAI's streams end
        if isinstance(exc, ConnectionResetError):
            raise
        return await end_stream_with_error(resp, f"Transcription failed: {exc}")
    text = " ".join(texts)
    audio_tokens = math.ceil(clip.duration * AUDIO_TOKENS_PER_S)
    prompt_tokens = _tokens(params.prompt or "")
    usage = {
        "type": "tokens",
        "input_tokens": audio_tokens + prompt_tokens,
        "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": prompt_tokens},
        "output_tokens": _tokens(text),
        "total_tokens": audio_tokens + prompt_tokens + _tokens(text),
    }
    await resp.write(sse({"type": "transcript.text.done", "text": text, "usage": usage}))
    await resp.write_eof()
    return resp


async def transcriptions(ctx: ApiContext, request: web.Request) -> web.StreamResponse:
    try:
        form = await _read_form(request)
        params = _params(form)
        assert form.file is not None
        upload, form.file = form.file, None
        try:
            clip = await asyncio.to_thread(decode_upload, upload.data, upload.filename, upload.content_type)
        except UploadError as exc:
            raise BadRequest(str(exc), "file", exc.code) from None
        del upload  # the decoded clip is all that is kept
    except BadRequest as exc:
        return invalid(str(exc), exc.param, exc.code)
    if params.stream:
        return await _stream(request, ctx, clip, params)
    segments = [seg async for seg in _segments(ctx, clip, params.prompt)]
    text = " ".join(seg.text for seg in segments)
    fmt = params.response_format
    if fmt == "json":
        return web.json_response(
            {"text": text, "usage": {"type": "duration", "seconds": round(clip.duration, 3)}}
        )
    if fmt == "verbose_json":
        return web.json_response(_verbose(segments, text, clip.duration, params))
    body = text + "\n" if fmt == "text" else _subtitles(segments, srt=fmt == "srt")
    return web.Response(text=body, content_type="text/plain", charset="utf-8")
