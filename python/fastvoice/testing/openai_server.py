"""A local stand-in for the OpenAI audio, Responses and Realtime transcription endpoints.

``FakeOpenAIServer`` is a real aiohttp server on 127.0.0.1. Point a client's base URL at
``server.base_url`` (``http://127.0.0.1:PORT/v1``)::

    async with FakeOpenAIServer(api_key="test") as server:
        server.stt_texts = ["What is the weather in Paris?"]
        server.responses = [FakeResponse(tool_calls=[("get_weather", {"city": "Paris"})]),
                            FakeResponse(text="It is sunny in Paris.")]
        server.fail("/audio/transcriptions", 500, times=1)     # then success
        ...
        assert server.errors == []                               # every request was valid

Endpoints: ``POST /v1/audio/transcriptions`` (multipart), ``POST /v1/audio/speech`` (PCM streamed
in ``tts_chunk_bytes`` pieces), ``POST /v1/responses`` (SSE, scripted text and function calls)
and ``GET /v1/realtime?intent=transcription`` (WebSocket; an energy VAD stands in for the
server's turn detection). Every request is checked against the ``openai`` package's param types
(unknown fields rejected); an invalid one gets a 400 (an ``error`` event on the WebSocket) and is
added to ``errors``. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import math
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic
from aiohttp import BodyPartReader, WSMsgType, web

from fastvoice.realtime.auth import redact
from fastvoice.testing.validation import (
    EventValidationError,
    materialize,
    validate_client_event,
    validate_server_event,
)

__all__ = ["FakeOpenAIServer", "FakeResponse", "RecordedRequest"]

_TTS_RATE = 24000


@dataclass(slots=True)
class FakeResponse:
    """One scripted Responses API answer: `text` streamed as word deltas, then the function
    calls (`(name, arguments)`; arguments a dict or JSON text) as `function_call` items."""

    text: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any] | str]] = ()


@dataclass(slots=True)
class RecordedRequest:
    """A request the server received: `path` (without `/v1`), the parsed `body` (JSON, form
    fields with `file` as bytes, or a WebSocket client event) and the redacted auth header."""

    path: str
    body: dict[str, Any]
    authorization: str | None = None
    time: float = field(default_factory=time.perf_counter)


@functools.cache
def _adapter(name: str) -> tuple[pydantic.TypeAdapter[Any], frozenset[str]]:
    from openai.types.audio.speech_create_params import SpeechCreateParams
    from openai.types.audio.transcription_create_params import TranscriptionCreateParamsNonStreaming
    from openai.types.responses import ResponseCreateParams
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
    from typing_extensions import TypedDict

    if name == "transcription":
        hints = typing.get_type_hints(TranscriptionCreateParamsNonStreaming, include_extras=True)
        # `file` is typed as IO/bytes tuples pydantic cannot build; it is checked by hand.
        fields = {k: v for k, v in hints.items() if k != "file"}
        return pydantic.TypeAdapter(TypedDict("_Form", fields, total=False)), frozenset(hints)  # type: ignore[operator]
    if name == "speech":
        return pydantic.TypeAdapter(SpeechCreateParams), frozenset(typing.get_type_hints(SpeechCreateParams))
    keys = frozenset(typing.get_type_hints(ResponseCreateParamsStreaming))
    return pydantic.TypeAdapter(ResponseCreateParams), keys


@functools.cache
def _tool_fields() -> dict[str, frozenset[str]]:
    """Responses tool `type` -> the fields its openai param type declares."""
    from openai.types.responses import ToolParam

    out: dict[str, frozenset[str]] = {}
    for member in typing.get_args(ToolParam):
        hints = typing.get_type_hints(member)
        for kind in typing.get_args(hints["type"]):
            out[kind] = frozenset(hints)
    return out


def _check_tools(tools: Any) -> None:
    # pydantic ignores unknown keys of a TypedDict: a misspelt tool field would pass unseen.
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, Mapping):
            continue  # the TypeAdapter reports it
        fields = _tool_fields().get(str(tool.get("type")))
        if fields is None:
            raise ValueError(f"tools.{i}: unknown tool type {tool.get('type')!r}")
        unknown = sorted(set(tool) - fields)
        if unknown:
            raise ValueError(f"tools.{i}: unknown field(s) {unknown} for a {tool['type']!r} tool")


def validate_request(kind: str, body: Mapping[str, Any], required: Sequence[str]) -> None:
    """Check `body` against the openai param type `kind` ("transcription", "speech",
    "responses"); raises `ValueError` naming the problem."""
    adapter, keys = _adapter(kind)
    unknown = sorted(set(body) - keys)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}")
    missing = [k for k in required if k not in body]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    data = {k: v for k, v in body.items() if not (kind == "transcription" and k == "file")}
    if kind == "responses":
        _check_tools(data.get("tools"))
    try:
        materialize(adapter.validate_python(data))
    except pydantic.ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None


def _tone(n_samples: int, start: int) -> bytes:
    t = np.arange(start, start + n_samples)
    return (np.sin(2 * np.pi * 440.0 * t / _TTS_RATE) * 8000).astype("<i2").tobytes()


class FakeOpenAIServer:
    """See the module docstring. Attributes a test sets (all optional):

    - `stt_texts`: transcripts answered in order (the last one repeats); default "hello".
    - `speech_audio`: `callable(text) -> PCM16 bytes`; default 60 ms of 440 Hz tone per word.
    - `responses`: `FakeResponse`s consumed in order; when empty, the answer is
      "You said: <last user text>."
    - delays in seconds: `stt_delay`, `llm_delay` (before the first event), `tts_delay` (before
      the first byte), `tts_chunk_interval` (between chunks); `tts_chunk_bytes`.
    - `cut_speech_after`: drop the connection after this many bytes of a speech body.
    - `fail_realtime_turns`: indices of transcription-session turns answered with
      `conversation.item.input_audio_transcription.failed` (each still consumes a transcript).
    - `vad_threshold_db`: the transcription session's energy VAD level (dBFS, 20 ms frames).
    """

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._api_key = api_key
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.stt_texts: list[str] = ["hello"]
        self.speech_audio: Callable[[str], bytes] = lambda text: _tone(1440 * max(1, len(text.split())), 0)
        self.responses: list[FakeResponse] = []
        self.stt_delay = 0.0
        self.llm_delay = 0.0
        self.tts_delay = 0.0
        self.tts_chunk_interval = 0.0
        self.tts_chunk_bytes = 4800
        self.cut_speech_after: int | None = None
        self.vad_threshold_db = -40.0
        self.fail_realtime_turns: set[int] = set()
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._failures: dict[str, list[tuple[int, str]]] = {}
        self._stt_index = 0
        self._ids = itertools.count(1)

    # ---- lifecycle and scripting

    async def start(self) -> FakeOpenAIServer:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/realtime", self._realtime)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    def fail(self, path: str, status: int, times: int = 1, message: str = "scripted failure") -> None:
        """The next `times` requests to `path` (e.g. "/audio/transcriptions") get `status`."""
        self._failures.setdefault(path, []).extend([(status, message)] * times)

    def count(self, path: str) -> int:
        """How many requests (failed ones included) reached `path`."""
        return sum(1 for r in self.requests if r.path == path)

    # ---- shared request handling

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):08d}"

    @staticmethod
    def _error(
        status: int, message: str, etype: str = "invalid_request_error", code: str | None = None
    ) -> web.Response:
        body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
        return web.json_response(body, status=status)

    def _gate(self, request: web.Request, path: str, body: dict[str, Any]) -> web.Response | None:
        """Record the request; the scripted failure or auth error to answer with, if any."""
        auth = request.headers.get("Authorization")
        shown = None if auth is None else "Bearer " + redact(auth.removeprefix("Bearer "))
        self.requests.append(RecordedRequest(path, body, shown))
        if self._api_key is not None and auth != f"Bearer {self._api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        queue = self._failures.get(path)
        if queue:
            status, message = queue.pop(0)
            return self._error(status, message, "server_error" if status >= 500 else "invalid_request_error")
        return None

    def _invalid(self, path: str, problem: str) -> web.Response:
        self.errors.append(f"{path}: {problem}")
        return self._error(400, f"invalid request: {problem}")

    # ---- /audio/transcriptions

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        path = "/audio/transcriptions"
        body: dict[str, Any] = {}
        try:
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                raw = await part.read()
                body[part.name] = bytes(raw) if part.name == "file" else bytes(raw).decode()
        except (ValueError, AssertionError) as exc:
            self.requests.append(RecordedRequest(path, {}))
            return self._invalid(path, f"not a multipart body: {exc}")
        if (gated := self._gate(request, path, body)) is not None:
            return gated
        try:
            validate_request("transcription", body, ("file", "model"))
            if body["file"][:4] != b"RIFF" or body["file"][8:12] != b"WAVE":
                raise ValueError("file is not a WAV file")
        except ValueError as exc:
            return self._invalid(path, str(exc))
        await asyncio.sleep(self.stt_delay)
        return web.json_response({"text": self._next_transcript()})

    def _next_transcript(self) -> str:
        texts = self.stt_texts or [""]
        text = texts[min(self._stt_index, len(texts) - 1)]
        self._stt_index += 1
        return text

    # ---- /audio/speech

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        path = "/audio/speech"
        try:
            body = await request.json()
        except ValueError:
            self.requests.append(RecordedRequest(path, {}))
            return self._invalid(path, "body is not JSON")
        if (gated := self._gate(request, path, body)) is not None:
            return gated
        try:
            validate_request("speech", body, ("input", "model", "voice"))
        except ValueError as exc:
            return self._invalid(path, str(exc))
        if body.get("response_format", "mp3") != "pcm":
            return self._invalid(path, "the fake server only produces response_format='pcm'")
        pcm = self.speech_audio(str(body["input"]))
        resp = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await resp.prepare(request)
        await asyncio.sleep(self.tts_delay)
        sent = 0
        step = max(2, self.tts_chunk_bytes)
        for start in range(0, len(pcm), step):
            chunk = pcm[start : start + step]
            if self.cut_speech_after is not None and sent + len(chunk) > self.cut_speech_after:
                await resp.write(chunk[: max(0, self.cut_speech_after - sent)])
                if request.transport is not None:
                    request.transport.abort()  # no terminating chunk: the client sees a cut body
                return resp
            await resp.write(chunk)
            sent += len(chunk)
            if self.tts_chunk_interval:
                await asyncio.sleep(self.tts_chunk_interval)
        await resp.write_eof()
        return resp

    # ---- /responses

    def _script(self, body: Mapping[str, Any]) -> FakeResponse:
        if self.responses:
            return self.responses.pop(0)
        users = [i for i in body.get("input") or [] if isinstance(i, Mapping) and i.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
        return FakeResponse(text=f"You said: {content}.")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        path = "/responses"
        try:
            body = await request.json()
        except ValueError:
            self.requests.append(RecordedRequest(path, {}))
            return self._invalid(path, "body is not JSON")
        if (gated := self._gate(request, path, body)) is not None:
            return gated
        try:
            validate_request("responses", body, ("model", "input"))
            if body.get("stream") is not True:
                raise ValueError("the fake server only answers stream=true")
        except ValueError as exc:
            return self._invalid(path, str(exc))
        script = self._script(body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(self.llm_delay)
        for event in _response_events(self._id("resp"), str(body["model"]), script, self._id):
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await resp.write_eof()
        return resp

    # ---- /realtime?intent=transcription

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 2**20)
        auth_ok = self._api_key is None or request.headers.get("Authorization") == f"Bearer {self._api_key}"
        if request.query.get("intent") != "transcription" or not auth_ok:
            self.requests.append(RecordedRequest("/realtime", dict(request.query)))
            return self._error(401 if not auth_ok else 400, "expected ?intent=transcription and a valid key")
        await ws.prepare(request)
        session = _Transcription(self, ws)
        await session.run()
        return ws


def _response_events(
    resp_id: str, model: str, script: FakeResponse, new_id: Callable[[str], str]
) -> list[dict[str, Any]]:
    """The SSE events of one scripted response, in the real API's order."""
    seq = itertools.count()
    base = {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "output": [],
        "status": "in_progress",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": base},
        {"type": "response.in_progress", "response": base},
    ]
    output: list[dict[str, Any]] = []
    if script.text:
        item_id = new_id("msg")
        msg = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": msg})
        for i, word in enumerate(script.text.split(" ")):
            piece = word if i == 0 else " " + word
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
            )
        part = {"type": "output_text", "text": script.text, "annotations": []}
        done = {**msg, "status": "completed", "content": [part]}
        events.append({"type": "response.output_item.done", "output_index": 0, "item": done})
        output.append(done)
    for name, args in script.tool_calls:
        arguments = args if isinstance(args, str) else json.dumps(args)
        call = {
            "id": new_id("fc"),
            "type": "function_call",
            "call_id": new_id("call"),
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
        index = len(output)
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": {**call, "arguments": ""}}
        )
        events.append({"type": "response.output_item.done", "output_index": index, "item": call})
        output.append(call)
    events.append(
        {"type": "response.completed", "response": {**base, "status": "completed", "output": output}}
    )
    for event in events:
        event["sequence_number"] = next(seq)
    return events


class _Transcription:
    """One transcription WebSocket: session config, an energy VAD over the appended audio, and
    scripted transcripts (the server's `stt_texts`) streamed as delta + completed events."""

    def __init__(self, server: FakeOpenAIServer, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.silence_ms = 500
        self.pcm = bytearray()  # uncommitted audio
        self.in_speech = False
        self.quiet_ms = 0.0
        self.carry = b""
        self.item_id = ""
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.server._id("event"))
        try:
            validate_server_event(event)
        except EventValidationError as exc:
            self.server.errors.append(f"fake server sent an invalid event: {exc}")
        await self.ws.send_str(json.dumps(event))

    def session(self) -> dict[str, Any]:
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": _TTS_RATE},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": self.silence_ms},
                }
            },
        }

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": self.session()})
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                event = json.loads(msg.data)
                self.server.requests.append(RecordedRequest("/realtime", event))
                validate_client_event(event)
            except (ValueError, EventValidationError) as exc:
                self.server.errors.append(f"/realtime: {exc}")
                await self.send(
                    {"type": "error", "error": {"type": "invalid_request_error", "message": str(exc)}}
                )
                continue
            await self.handle(event)
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def handle(self, event: dict[str, Any]) -> None:
        etype = event["type"]
        if etype == "session.update":
            session = event["session"]
            if session.get("type") != "transcription":
                self.server.errors.append("/realtime: session.update without type=transcription")
            td = ((session.get("audio") or {}).get("input") or {}).get("turn_detection") or {}
            self.silence_ms = int(td.get("silence_duration_ms", 500))
            await self.send({"type": "session.updated", "session": self.session()})
        elif etype == "input_audio_buffer.append":
            await self.feed(base64.b64decode(event["audio"]))
        elif etype == "input_audio_buffer.commit":
            if not self.in_speech:
                await self.send(
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "input_audio_buffer_commit_empty",
                            "message": "buffer empty",
                            "event_id": event.get("event_id"),
                        },
                    }
                )
            else:
                await self.commit()
        elif etype == "input_audio_buffer.clear":
            self.pcm.clear()
            self.in_speech = False
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.send({"type": "input_audio_buffer.cleared"})

    async def feed(self, data: bytes) -> None:
        data = self.carry + data
        frame = 2 * _TTS_RATE // 50  # 20 ms
        usable = len(data) - len(data) % frame
        self.carry = data[usable:]
        for start in range(0, usable, frame):
            chunk = data[start : start + frame]
            self.pcm += chunk
            x = np.frombuffer(chunk, dtype="<i2").astype(np.float64)
            level = 20 * math.log10(max(float(np.sqrt(np.mean(x * x))) / 32768.0, 1e-9))
            if level > self.server.vad_threshold_db:
                self.quiet_ms = 0.0
                if not self.in_speech:
                    self.in_speech = True
                    self.item_id = self.server._id("item")
                    ms = len(self.pcm) * 1000 // (2 * _TTS_RATE)
                    await self.send(
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": ms,
                            "item_id": self.item_id,
                        }
                    )
            elif self.in_speech:
                self.quiet_ms += 20.0
                if self.quiet_ms >= self.silence_ms:
                    ms = len(self.pcm) * 1000 // (2 * _TTS_RATE)
                    await self.send(
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "audio_end_ms": ms,
                            "item_id": self.item_id,
                        }
                    )
                    await self.commit()

    async def commit(self) -> None:
        item_id = self.item_id
        self.in_speech = False
        self.quiet_ms = 0.0
        self.pcm.clear()
        await self.send(
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None}
        )
        index = self.server._stt_index
        text = self.server._next_transcript()
        self.tasks.append(asyncio.create_task(self.transcribe(item_id, text, index)))

    async def transcribe(self, item_id: str, text: str, index: int) -> None:
        await asyncio.sleep(self.server.stt_delay)
        if index in self.server.fail_realtime_turns:
            error = {"type": "server_error", "code": "transcription_failed", "message": "scripted failure"}
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": error,
                }
            )
            return
        for i, word in enumerate(text.split(" ")):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": word if i == 0 else " " + word,
                }
            )
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": 1.0},
            }
        )
