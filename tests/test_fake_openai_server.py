"""FakeOpenAIServer itself: validation against the openai param types, auth, scripted failures,
streamed speech timing and chunking, and the transcription WebSocket's error path."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest
from fastvoice import transport
from fastvoice.testing import FakeOpenAIServer
from fastvoice.testing.openai_server import validate_request

KEY = "sk-fake-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def server():
    async with FakeOpenAIServer(api_key=KEY) as srv:
        yield srv


@pytest.mark.parametrize(
    ("kind", "body", "problem"),
    [
        ("speech", {"model": "m", "input": "x", "voice": "nova", "voise": "x"}, "unknown field"),
        (
            "speech",
            {"model": "m", "input": "x", "voice": "nova", "response_format": "pcm16"},
            "response_format",
        ),
        ("speech", {"model": "m", "input": "x"}, "missing"),
        ("responses", {"model": "m", "input": [{"role": "userr", "content": "x"}]}, "input"),
        ("responses", {"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools"),
        ("transcription", {"file": b"", "model": "m", "response_format": "jsn"}, "response_format"),
    ],
)
def test_validate_request_rejects_what_openai_types_reject(kind, body, problem):
    required = {"speech": ("input", "model", "voice"), "responses": ("model",), "transcription": ("model",)}
    with pytest.raises(ValueError, match=problem):
        validate_request(kind, body, required[kind])


async def test_invalid_request_gets_400_and_is_recorded(server):
    async with aiohttp.ClientSession(headers=AUTH) as s:
        body = {"model": "tts-1", "input": "hi", "voice": "nova", "response_format": "pcm", "pitch": 2}
        async with s.post(server.base_url + "/audio/speech", json=body) as r:
            assert r.status == 400
            assert "pitch" in (await r.json())["error"]["message"]
    assert len(server.errors) == 1 and "pitch" in server.errors[0]
    assert server.requests[0].body == body


async def test_wrong_key_is_401_and_failures_are_consumed_in_order(server):
    async with aiohttp.ClientSession() as s:
        async with s.post(
            server.base_url + "/responses", json={}, headers={"Authorization": "Bearer x"}
        ) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
        server.fail("/responses", 503, times=2)
        statuses = []
        for _ in range(3):
            async with s.post(
                server.base_url + "/responses",
                json={"model": "m", "input": "hi", "stream": True},
                headers=AUTH,
            ) as r:
                statuses.append(r.status)
                await r.read()
    assert statuses == [503, 503, 200]
    assert server.count("/responses") == 4
    assert server.requests[0].authorization == "Bearer ***"  # a short key is fully masked


async def test_speech_is_streamed_with_delays_and_chunk_sizes(server):
    server.tts_delay = 0.05
    server.tts_chunk_bytes = 960
    server.tts_chunk_interval = 0.01
    body = {"model": "gpt-4o-mini-tts", "input": "one two three", "voice": "nova", "response_format": "pcm"}
    arrivals = []
    data = b""
    async with aiohttp.ClientSession(headers=AUTH) as s:
        t0 = time.perf_counter()
        async with s.post(server.base_url + "/audio/speech", json=body) as r:
            async for chunk in r.content.iter_any():
                arrivals.append(time.perf_counter() - t0)
                data += chunk
    assert data == server.speech_audio("one two three")
    assert len(data) == 3 * 1440 * 2  # 60 ms of 24 kHz PCM16 per word
    x = np.frombuffer(data, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) * 24000 / len(x) == pytest.approx(440, abs=10)  # the documented tone
    assert arrivals[0] >= 0.05
    assert len(arrivals) >= 3 and arrivals[-1] - arrivals[0] >= 0.05  # spread out, not one burst


async def test_transcription_websocket_rejects_invalid_events(server):
    url = server.base_url.replace("http://", "ws://") + "/realtime?intent=transcription"
    async with transport.connect(url, headers=AUTH) as conn:
        created = json.loads(await conn.recv())
        assert created["type"] == "session.created" and created["session"]["type"] == "transcription"
        await conn.send_text(json.dumps({"type": "input_audio_buffer.apend", "audio": ""}))
        err = json.loads(await asyncio.wait_for(conn.recv(), 5))
        assert err["type"] == "error" and "apend" in err["error"]["message"]
        await conn.send_text(json.dumps({"type": "input_audio_buffer.commit", "event_id": "e1"}))
        err = json.loads(await asyncio.wait_for(conn.recv(), 5))
        assert err["error"]["code"] == "input_audio_buffer_commit_empty" and err["error"]["event_id"] == "e1"
    assert len(server.errors) == 1
