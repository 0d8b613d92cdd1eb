"""`fastvoice serve` access control: the Origin check and the API key, over real WebSockets on 127.0.0.1.

A web page the user visits can open ``ws://127.0.0.1:PORT`` from the browser; only its ``Origin`` header
tells it apart, so non-loopback origins are refused unless allowed. With a key, clients must present it as
``Authorization: Bearer`` (the openai package, fastvoice's client) or as the browser subprotocol form.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
import websockets
from fastvoice import realtime as rt
from fastvoice.serve import RealtimeServer, cli_main
from fastvoice.testing import validate_server_event

KEY = "sk-serve-test-4f1c9a7e2b"
ERROR_KEYS = {"message", "type", "param", "code"}


def upgrade_headers(**extra: str) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **extra,
    }


async def try_upgrade(server: RealtimeServer, **headers: str) -> tuple[int, Any, dict[str, str]]:
    """Send a raw upgrade request; the status, the parsed body (None after a 101) and the headers."""
    url = f"http://127.0.0.1:{server.port}/v1/realtime"
    async with aiohttp.ClientSession() as http, http.get(url, headers=upgrade_headers(**headers)) as resp:
        body = None if resp.status == 101 else json.loads(await resp.text())
        return resp.status, body, dict(resp.headers)


def assert_openai_error(body: Any, code: str) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["param"] is None
    assert isinstance(error["message"], str) and error["message"]
    return error


async def session_created(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    event: dict[str, Any] = json.loads(msg.data)
    validate_server_event(event)
    assert event["type"] == "session.created"
    return event


# ---- Origin
# -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://localhost.evil.example",
        "http://127.0.0.1.evil.example:8765",
        "http://192.168.1.10:3000",
        "null",
        "file://",
        "ws://localhost",
    ],
)
async def test_foreign_origin_is_refused_with_403(origin: str) -> None:
    async with RealtimeServer(warm=False) as server:
        status, body, _ = await try_upgrade(server, Origin=origin)
        assert status == 403
        error = assert_openai_error(body, "origin_not_allowed")
        assert "--allow-origin" in error["message"]
        assert not server.sessions


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:5173",
        "https://LOCALHOST:8443",
        "http://127.0.0.1:3000",
        "http://127.10.0.1",
        "http://[::1]:8080",
    ],
)
async def test_loopback_origins_and_no_origin_connect(origin: str) -> None:
    async with RealtimeServer(warm=False) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.url, origin=origin) as ws:
            await session_created(ws)
        async with http.ws_connect(server.url) as ws:  # a non-browser client sends no Origin
            await session_created(ws)


async def test_allow_origin_is_an_exact_match() -> None:
    allowed = "https://app.example.com"
    async with RealtimeServer(warm=False, allowed_origins=[allowed, "http://10.0.0.5:8080"]) as server:
        async with aiohttp.ClientSession() as http:
            for origin in (allowed, "http://10.0.0.5:8080"):
                async with http.ws_connect(server.url, origin=origin) as ws:
                    await session_created(ws)
        for near_miss in (
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil.app.example.com",
            "https://app.example.com.evil.example",
            "http://10.0.0.5",
        ):
            status, body, _ = await try_upgrade(server, Origin=near_miss)
            assert status == 403, near_miss
            assert_openai_error(body, "origin_not_allowed")


def test_allowed_origin_must_be_scheme_host_port() -> None:
    for bad in ("app.example.com", "https://app.example.com/", "https://app.example.com/path", ""):
        with pytest.raises(ValueError, match="scheme://host"):
            RealtimeServer(allowed_origins=[bad])


# ---- API key
# ------------------------------------------------------------------------------------------------------


async def test_key_required_when_set_and_refusals_are_401_without_the_key() -> None:
    async with RealtimeServer(warm=False, api_key=KEY) as server:
        wrong = "sk-wrong-000000000000"
        for headers in (
            {},
            {"Authorization": f"Bearer {wrong}"},
            {"Authorization": KEY},  # no scheme
            {"Authorization": f"Basic {KEY}"},
            {"Authorization": f"Bearer {KEY}x"},
            {"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{wrong}"},
        ):
            status, body, resp_headers = await try_upgrade(server, **headers)
            assert status == 401, headers
            assert_openai_error(body, "invalid_api_key")
            assert resp_headers.get("WWW-Authenticate") == "Bearer"
            text = json.dumps(body)
            assert KEY not in text and wrong not in text
        assert not server.sessions
        # A right key does not excuse a foreign origin.
        status, body, _ = await try_upgrade(
            server, Authorization=f"Bearer {KEY}", Origin="https://evil.example"
        )
        assert status == 403
        assert_openai_error(body, "origin_not_allowed")


async def test_bearer_key_connects() -> None:
    async with RealtimeServer(warm=False, api_key=KEY) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.url, headers={"Authorization": f"Bearer {KEY}"}) as ws:
            await session_created(ws)


async def test_browser_subprotocol_key_connects_and_gets_realtime_back() -> None:
    """What a browser sends: ``new WebSocket(url, ["realtime", "openai-insecure-api-key." + KEY])`` from a
    loopback page. The server must pick ``realtime``, or the browser fails the handshake."""
    async with RealtimeServer(warm=False, api_key=KEY) as server:
        protocols: Any = ["realtime", f"openai-insecure-api-key.{KEY}", "openai-beta.realtime-v1"]
        async with websockets.connect(
            server.url, subprotocols=protocols, origin=websockets.Origin("http://localhost:5173")
        ) as ws:
            assert ws.subprotocol == "realtime"
            event = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert event["type"] == "session.created"


async def test_openai_package_client_connects_with_its_key() -> None:
    """The official ``openai`` client pointed at the server: it sends ``Authorization: Bearer``."""
    from openai import AsyncOpenAI

    async with RealtimeServer(warm=False, api_key=KEY) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        client = AsyncOpenAI(api_key=KEY, base_url=base)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            event = await asyncio.wait_for(conn.recv(), 10)
            assert event.type == "session.created"
            await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
            updated = await asyncio.wait_for(conn.recv(), 10)
            assert updated.type == "session.updated"
        bad = AsyncOpenAI(api_key="sk-not-the-key", base_url=base)
        with pytest.raises(Exception) as info:
            async with bad.realtime.connect(model="gpt-realtime") as conn:
                await conn.recv()
        assert "401" in str(info.value)
        await client.close()
        await bad.close()


async def test_fastvoice_client_connects_with_its_key() -> None:
    async with RealtimeServer(warm=False, api_key=KEY) as server:
        session = await rt.start_session(rt.agent("A", "Be brief."), api_key=KEY, url=server.url)
        try:
            assert len(server.sessions) == 1
        finally:
            await session.stop()


async def test_key_never_logged_nor_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = RealtimeServer(warm=False, api_key=KEY, host="127.0.0.1")
    async with server:
        await try_upgrade(server, Authorization="Bearer nope")
        await try_upgrade(server, Authorization=f"Bearer {KEY}", Origin="https://evil.example")
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url, headers={"Authorization": f"Bearer {KEY}"}) as ws:
                await session_created(ws)
        assert KEY not in repr(server) and "api_key=set" in repr(server)
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert "refused a connection" in logged  # the refusals were logged...
    assert KEY not in logged  # ...without the key


# ---- the CLI
# -------------------------------------------------------------------------------------------------------


def _start_cli(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastvoice.serve", "--port", "0", "--no-warm", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on ws://" in line, line
    return proc, int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _stop_cli(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    return err


async def _cli_status(port: int, **headers: str) -> int:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/v1/realtime"
        async with http.get(url, headers=upgrade_headers(**headers)) as resp:
            return resp.status


async def test_cli_warns_on_a_public_host_without_a_key() -> None:
    proc, port = _start_cli("--host", "0.0.0.0")
    try:
        assert await _cli_status(port) == 101
    finally:
        err = _stop_cli(proc)
    assert "without an API key" in err and "--api-key" in err


async def test_cli_key_from_env_and_flags() -> None:
    proc, port = _start_cli(
        "--host", "0.0.0.0", "--allow-origin", "https://app.example.com", env={"FASTVOICE_SERVE_API_KEY": KEY}
    )
    try:
        assert await _cli_status(port) == 401
        assert await _cli_status(port, Authorization=f"Bearer {KEY}") == 101
        origin = "https://app.example.com"
        assert await _cli_status(port, Authorization=f"Bearer {KEY}", Origin=origin) == 101
        assert await _cli_status(port, Authorization=f"Bearer {KEY}", Origin="https://x.example") == 403
    finally:
        err = _stop_cli(proc)
    assert "without an API key" not in err
    assert KEY not in err


def test_cli_rejects_a_malformed_origin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--allow-origin", "https://app.example.com/path", "--no-warm"]) == 2
    assert "scheme://host" in capsys.readouterr().err


def test_cli_help_documents_access_and_limits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    for flag in (
        "--allow-origin",
        "--api-key",
        "FASTVOICE_SERVE_API_KEY",
        "--max-sessions",
        "--idle-timeout",
        "--handshake-timeout",
    ):
        assert flag in out, flag
