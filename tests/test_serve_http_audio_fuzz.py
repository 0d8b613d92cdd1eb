"""Fuzzed requests to fastvoice serve's HTTP audio endpoints: whatever arrives (random form fields, random
bytes, WAV headers with random fields, random speech bodies), the answer is a 200 whose body validates against
the `openai` types or an OpenAI-shaped 400, never a 500 or a hang. Hypothesis drives sync tests, so the server
runs in a thread of its own."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from _http_audio import (
    SpeechDelta,
    SpeechDone,
    check_error,
    strict,
)
from fastvoice.serve import RealtimeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.audio import (
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
)


@contextmanager
def threaded_server() -> Iterator[RealtimeServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = RealtimeServer(engines="light")
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _random_wav(draw: Any) -> bytes:
    tag = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 2, 0]))
    channels = draw(st.integers(0, 9))
    rate = draw(st.sampled_from([0, 1, 3999, 8000, 16000, 44100, 384001, 2**32 - 1]))
    bits = draw(st.sampled_from([0, 4, 8, 12, 16, 24, 32, 64]))
    align = draw(st.integers(0, 80))
    data = draw(st.binary(max_size=6000))
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align % 2**32, align, bits)
    body = (
        b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", draw(st.sampled_from([len(data), 0, 2**32 - 1, 7])))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


@st.composite
def uploads(draw: Any) -> tuple[bytes, str, dict[str, str]]:
    kind = draw(st.sampled_from(["wav", "bytes", "magic"]))
    if kind == "wav":
        file = _random_wav(draw)
    elif kind == "magic":
        file = draw(st.sampled_from([b"RIFF", b"ID3", b"OggS", b"fLaC", b"RF64"])) + draw(
            st.binary(max_size=200)
        )
    else:
        file = draw(st.binary(max_size=3000))
    filename = draw(st.sampled_from(["a.wav", "a.pcm", "a.mp3", "a", ""]))
    keys = [
        "response_format",
        "language",
        "temperature",
        "stream",
        "prompt",
        "timestamp_granularities[]",
        "include[]",
    ]
    fields = draw(st.dictionaries(st.sampled_from(keys), st.text(max_size=12), max_size=4))
    return file, filename, fields


@dataclass(slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line[6:]) for line in self.body.splitlines() if line.startswith(b"data: ")]


def request(base_url: str, path: str, **kwargs: Any) -> Answer:
    """One POST from this (sync) thread to the server running in its own (hypothesis drives sync tests)."""

    async def go() -> Answer:
        async with aiohttp.ClientSession() as http, http.post(base_url + path, **kwargs) as r:
            return Answer(r.status, r.content_type, await r.read())

    return asyncio.run(go())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=uploads())
def test_fuzzed_transcription_requests_get_200_or_400(
    fuzz_url: str, case: tuple[bytes, str, dict[str, str]]
) -> None:
    file, filename, fields = case
    form = aiohttp.FormData({"model": "whisper-1", **fields})
    form.add_field("file", io.BytesIO(file), filename=filename, content_type="application/octet-stream")
    r = request(fuzz_url, "/audio/transcriptions", data=form)
    if r.status != 200:
        check_error(r.status, r.json(), 400, r.json()["error"]["param"])
    elif r.content_type == "application/json":
        body = r.json()
        strict(TranscriptionVerbose if "segments" in body else Transcription, body)
    elif r.content_type == "text/event-stream":
        *deltas, done = r.events()
        [strict(TranscriptionTextDeltaEvent, d) for d in deltas]
        strict(TranscriptionTextDoneEvent, done)


@st.composite
def speech_bodies(draw: Any) -> dict[str, Any]:
    value = st.one_of(
        st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8)
    )
    body = {
        "model": draw(st.one_of(st.just("tts-1"), value)),
        "voice": draw(st.one_of(st.just("nova"), value)),
        "input": draw(st.one_of(st.text(max_size=30), value)),
    }
    for key in draw(
        st.sets(st.sampled_from(["speed", "response_format", "stream_format", "instructions", "x"]))
    ):
        body[key] = draw(st.one_of(value, st.sampled_from(["pcm", "wav", "sse", "audio", 1.0, 0.25, 4.0])))
    return body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=speech_bodies())
def test_fuzzed_speech_requests_get_200_or_400(fuzz_url: str, body: dict[str, Any]) -> None:
    try:
        payload = json.dumps(body).encode()
    except ValueError:
        return
    r = request(fuzz_url, "/audio/speech", data=payload, headers={"Content-Type": "application/json"})
    if r.status != 200:
        check_error(r.status, r.json(), 400, r.json()["error"]["param"])
    elif r.content_type == "text/event-stream":
        *deltas, done = r.events()
        [strict(SpeechDelta, d) for d in deltas]
        strict(SpeechDone, done)


@pytest.fixture(scope="module")
def fuzz_url() -> Iterator[str]:
    with threaded_server() as server:
        yield server.base_url
