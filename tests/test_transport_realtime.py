"""End to end: the transport against the project's Realtime stand-in (`fastvoice.testing`, an aiohttp
server validating every event against the GA schema): auth header, native append frames, decoded deltas."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastvoice import transport
from fastvoice.audio import AudioDelta
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from fastvoice.transport import ConnectError


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_audio_round_trip_with_decoded_deltas() -> None:
    rng = np.random.default_rng(3)
    mic = rng.integers(-20000, 20000, 24000 // 5, dtype=np.int16)  # 200 ms at 24 kHz
    chunks = [rng.integers(-32768, 32767, 2400, dtype=np.int16).tobytes() for _ in range(4)]
    async with FakeRealtimeServer(api_key="sk-test-key") as server:
        server.on_commit(ScriptedResponse(audio=chunks, transcript="Hello!"))
        headers = {"Authorization": "Bearer sk-test-key"}
        url = server.url + "?model=gpt-realtime"
        async with transport.connect(url, headers=headers, decode_audio=True) as conn:
            created = json.loads(str(await conn.recv()))
            assert created["type"] == "session.created"
            for part in np.array_split(mic, 10):  # 20 ms appends, as a microphone would
                await conn.send_audio(part)
            await conn.send_text(json.dumps({"type": "input_audio_buffer.commit"}))
            deltas: list[AudioDelta] = []
            while True:
                msg = await conn.recv()
                if isinstance(msg, AudioDelta):
                    deltas.append(msg)
                    continue
                assert isinstance(msg, str)
                if json.loads(msg)["type"] == "response.done":
                    break
        assert server.errors == [] and server.invalid_frames == []
        assert server.input_audio == mic.tobytes()  # the server decoded our native frames exactly
    assert [d.pcm for d in deltas] == chunks
    assert all(d.type == "response.output_audio.delta" for d in deltas)


async def test_bad_key_is_connect_error_401() -> None:
    async with FakeRealtimeServer(api_key="right-key") as server:
        with pytest.raises(ConnectError) as info:
            await transport.connect(server.url, headers={"Authorization": "Bearer wrong-key-XYZ"})
    assert info.value.status == 401
    assert info.value.body is not None and b"invalid_api_key" in info.value.body
    assert "wrong-key-XYZ" not in str(info.value) + repr(info.value)
