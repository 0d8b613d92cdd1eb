"""`fastvoice web`'s server side, driven by a WebSocket client speaking the page's protocol: the page and its
assets, the per-page token and same-origin check on the socket, and a session through the browser dialect
(binary PCM16 at the page's rate both ways, marks acknowledged as played)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import numpy as np
import pytest
import websockets
from fastvoice import realtime
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from fastvoice.web import WebServer
from test_telephony_bridge import until


async def _page_token(http: aiohttp.ClientSession, base: str) -> str:
    r = await http.get(base)
    assert r.status == 200 and r.content_type == "text/html"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]  # no CDN, no inline script
    page = await r.text()
    for role in ("start", "user-transcript", "agent-transcript", "state"):
        assert f'data-role="{role}"' in page
    for asset in ("static/app.js", "static/worklets.js", "static/style.css"):
        a = await http.get(base + asset)
        assert a.status == 200 and len(await a.read()) > 500
    found = re.search(r'name="fastvoice-token" content="([^"]+)"', page)
    assert found
    return found.group(1)


async def test_the_socket_needs_the_pages_token_and_its_origin() -> None:
    agent = realtime.Agent(name="Web", instructions="x")
    async with FakeRealtimeServer() as fake, WebServer(agent, url=fake.url, api_key="sk-test", port=0) as web:
        base = web.base_url
        ws_url = base.replace("http://", "ws://") + "ws"
        origin = base.rstrip("/")
        async with aiohttp.ClientSession() as http:
            token = await _page_token(http, base)
            assert (await http.get(base + "static/../server.py")).status == 404
        for headers, query in (
            ({"Origin": "https://evil.example"}, token),  # a foreign page
            ({}, token),  # no Origin at all (not a browser page)
            ({"Origin": origin}, "forged"),  # the right origin, a made-up token
        ):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"{ws_url}?token={query}", additional_headers=headers)
            assert refused.value.response.status_code == 403
        assert fake.connections == []  # nothing reached the model
        async with websockets.connect(f"{ws_url}?token={token}", additional_headers={"Origin": origin}) as ws:
            await ws.send(json.dumps({"event": "start", "sample_rate": 48000}))
            await fake.wait_for("session.update")
            t = np.arange(48000) / 48000
            pcm = (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()
            for i in range(0, len(pcm), 1920):
                await ws.send(pcm[i : i + 1920])  # 20 ms binary frames
            await until(lambda: len(fake.input_audio) >= 48000 * 0.95)  # 24 kHz PCM16 at the model
            await fake.respond(ScriptedResponse(audio=[b"\x10\x00" * 12000], transcript="Hi there"))
            got, texts = b"", []
            while len(got) < 96000 * 0.45 or not any('"final": true' in t for t in texts):
                msg = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(msg, bytes):
                    got += msg
                else:
                    texts.append(msg)
                    if json.loads(msg).get("event") == "mark":
                        await ws.send(json.dumps({"event": "played", "name": json.loads(msg)["name"]}))
            events = [json.loads(t) for t in texts]
            assert {"event": "transcript", "role": "assistant", "text": "Hi there", "final": True} in [
                {k: e[k] for k in ("event", "role", "text", "final")}
                for e in events
                if e["event"] == "transcript"
            ]
            assert len(got) >= 96000 * 0.45  # the reply, at the page's 48 kHz
        # A token opens one socket only.
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{ws_url}?token={token}", additional_headers={"Origin": origin})


def test_fastvoice_web_serves_the_page_offline(tmp_path: object) -> None:
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    pytest.importorskip("ctranslate2", reason="the offline engines ([local]) are not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastvoice", "web", "--port", str(port), "--for", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        assert proc.stdout is not None
        assert "offline" in proc.stdout.readline()
        assert f"open http://127.0.0.1:{port}/" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            page = r.read().decode()
        assert 'data-role="start"' in page and "fastvoice-token" in page
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err


async def test_behind_a_tls_proxy_the_public_origin_is_the_pages_own() -> None:
    """What the guide's nginx block forwards: the public Host, and the page's https:// Origin for it."""
    agent = realtime.Agent(name="Web", instructions="x")
    async with FakeRealtimeServer() as fake, WebServer(agent, url=fake.url, api_key="sk-test", port=0) as web:
        ws_url = web.base_url.replace("http://", "ws://") + "ws"
        public = {"Host": "agent.example.com"}
        async with aiohttp.ClientSession() as http:
            r = await http.get(web.base_url, headers=public)
            found = re.search(r'name="fastvoice-token" content="([^"]+)"', await r.text())
            assert found
            url = f"{ws_url}?token={found.group(1)}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, headers={**public, "Origin": "https://other.example.com"})
            assert refused.value.status == 403
            assert fake.connections == []
            async with http.ws_connect(url, headers={**public, "Origin": "https://agent.example.com"}) as ws:
                await ws.send_str(json.dumps({"event": "start", "sample_rate": 48000}))
                await fake.wait_for("session.update")
