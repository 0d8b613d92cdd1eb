"""Credentials a server echoes back never reach Python: a refused upgrade's body, error messages and close
reasons are scrubbed natively (issue 10, item 6). The peers are real HTTP/WebSocket servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import pytest
from fastvoice import realtime as rt
from fastvoice import transport
from fastvoice.realtime.auth import redact, scrub
from fastvoice.transport import ConnectError, ConnectionClosedError
from websockets.asyncio.server import ServerConnection, serve

KEY = "sk-proj-Zq8rT3kLmN5pXv7Yw2Ab4Cd6Ef8Gh0Ij1Kl3Mn5Op7Qr9St"
OTHER = (
    "fv-tenant-secret-7c1e29b44a0f"  # a key with no recognisable shape: only the exact-string rule knows it
)


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


Body = Callable[[bytes], bytes]


async def _refusing_server(body: Body) -> AsyncIterator[int]:
    """An HTTP server that answers every upgrade with 401 and a body made from the request head."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        payload = body(head)
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _refused(body: Body, headers: dict[str, str]) -> ConnectError:
    async for port in _refusing_server(body):
        with pytest.raises(ConnectError) as info:
            await transport.connect(f"ws://127.0.0.1:{port}/v1/realtime", headers=headers)
        return info.value
    raise AssertionError("unreachable")


def _texts(err: BaseException) -> list[str]:
    """Everything of an error a log line or traceback could show."""
    return [str(err), repr(err), *map(str, err.args), *(repr(v) for v in vars(err).values())]


def _assert_clean(err: ConnectError, *secrets: str) -> None:
    assert err.body is not None
    for secret in secrets:
        assert secret.encode() not in err.body, err.body
        for text in _texts(err):
            assert secret not in text, text


async def test_echoed_authorization_header_is_scrubbed_from_body_and_message() -> None:
    err = await _refused(lambda head: b"you sent:\n" + head, {"Authorization": f"Bearer {KEY}"})
    assert err.status == 401
    assert err.body is not None and err.body.startswith(b"you sent:\nGET /v1/realtime HTTP/1.1\r\n")
    # The header line is still there for debugging, with the key in its printable form.
    assert f"authorization: Bearer {redact(KEY)}\r\n".encode() in err.body
    _assert_clean(err, KEY, KEY[8:20])


async def test_exact_key_without_a_known_shape_and_unsent_tokens_are_scrubbed() -> None:
    foreign = "Bearer 0a1b2c3d4e5f6a7b8c9d"  # a token this client never sent, quoted by the server

    def body(head: bytes) -> bytes:
        return (
            b'{"error": {"message": "bad key '
            + OTHER.encode()
            + b", also "
            + foreign.encode()
            + b'"}}\n'
            + head
        )

    err = await _refused(body, {"api-key": OTHER, "OpenAI-Beta": "realtime=v1"})
    _assert_clean(err, OTHER, "0a1b2c3d4e5f6a7b8c9d")
    assert b"realtime=v1" in err.body  # not a credential: kept  # type: ignore[operator]


async def test_key_straddling_the_excerpt_cut_is_scrubbed_whole() -> None:
    # The key starts 20 bytes before the 512-byte excerpt ends: cutting first would leave a 20-byte prefix.
    def body(head: bytes) -> bytes:
        at = head.find(KEY.encode())
        return b"x" * (512 - 20 - at) + head

    err = await _refused(body, {"Authorization": f"Bearer {KEY}"})
    assert err.body is not None and err.body.startswith(b"x" * 100)
    _assert_clean(err, KEY[:20], KEY[:12])


async def test_session_start_refused_with_an_echo_does_not_leak_the_key() -> None:
    async for port in _refusing_server(lambda head: head):
        with pytest.raises(ConnectError) as info:
            await rt.start_session(rt.agent("A", "x"), api_key=KEY, url=f"ws://127.0.0.1:{port}/v1/realtime")
        _assert_clean(info.value, KEY)
        assert info.value.status == 401


async def test_close_reason_echoing_a_key_is_scrubbed() -> None:
    async def handler(ws: ServerConnection) -> None:
        auth = ws.request.headers["Authorization"] if ws.request is not None else ""
        await ws.close(4001, f"denied: {auth}"[:120])

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        conn = await transport.connect(f"ws://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {KEY}"})
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
    err = info.value
    assert err.code == 4001 and err.reason.startswith("denied: Bearer sk-proj-…")
    for text in [*_texts(err), conn.close_reason or ""]:
        assert KEY[8:20] not in text, text


def test_http_providers_use_the_same_rule() -> None:
    text = f"HTTP 401: Incorrect API key provided: {KEY}; you sent Authorization: Bearer {OTHER}"
    out = scrub(text, OTHER)
    assert KEY not in out and OTHER not in out
    expected = f"Incorrect API key provided: {redact(KEY)}; you sent Authorization: Bearer {redact(OTHER)}"
    assert out == f"HTTP 401: {expected}"
    assert scrub(out, OTHER) == out  # already scrubbed text is left alone
    assert scrub("a bearer of news; ask-me; sk-short") == "a bearer of news; ask-me; sk-short"


async def test_proxy_refusal_echoing_its_credentials_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "proxy-pass-5d41402abc4b2a76"

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        auth = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"proxy-authorization"))
        writer.write(b"HTTP/1.1 407 denied " + auth + b" for user:" + password.encode() + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:{password}@127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectError) as info:
            await transport.connect(
                "wss://realtime.fastvoice.test/", headers={"Authorization": f"Bearer {KEY}"}
            )
    finally:
        server.close()
    err = info.value
    assert err.status == 407 and "refused CONNECT to realtime.fastvoice.test:443" in str(err)
    encoded = base64.b64encode(f"user:{password}".encode()).decode()
    for text in _texts(err):
        assert password not in text and encoded not in text, text
