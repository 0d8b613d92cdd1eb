"""Proxies never see loopback traffic, and plain ws:// never crosses a non-loopback proxy (issue 10, item 7).

The proxy is a real HTTP CONNECT proxy on 127.0.0.1, written here, that records every byte it is sent.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from fastvoice import realtime as rt
from fastvoice import transport
from fastvoice.testing import FakeRealtimeServer
from fastvoice.transport import ConnectError
from websockets.asyncio.server import ServerConnection, serve

KEY = "sk-proj-proxytest-0123456789abcdefghij"
REMOTE = "echo.fastvoice.test"  # not loopback and not resolvable: only the proxy can reach it
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


class RecordingProxy:
    """HTTP CONNECT proxy: tunnels every target to 127.0.0.1 at the requested port, records what it read."""

    def __init__(self) -> None:
        self.connections = 0
        self.seen = bytearray()

    async def __aenter__(self) -> RecordingProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, record: bool) -> None:
        try:
            while data := await r.read(65536):
                if record:
                    self.seen += data
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        self.seen += head
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, up_w, True), self._pipe(up_r, writer, False))


async def _echo(ws: ServerConnection) -> None:
    async for msg in ws:
        await ws.send(msg)


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy"])
async def test_loopback_ws_never_goes_through_the_proxy(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with RecordingProxy() as proxy, serve(_echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        monkeypatch.setenv(var, proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        for host in ("127.0.0.1", "localhost", "LocalHost"):
            url = f"ws://{host}:{port}/"
            async with transport.connect(url, headers={"Authorization": f"Bearer {KEY}"}) as conn:
                await conn.send_text(f"direct to {host}")
                assert await conn.recv() == f"direct to {host}"
    assert proxy.connections == 0 and bytes(proxy.seen) == b""


async def test_realtime_session_on_localhost_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with RecordingProxy() as proxy, FakeRealtimeServer(api_key=KEY) as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert server.url.startswith("ws://127.0.0.1:")
        for url in (server.url, server.url.replace("127.0.0.1", "localhost")):
            session = await rt.start_session(rt.agent("A", "x"), api_key=KEY, url=url)
            await session.stop()
    assert len(server.connections) == 2
    assert proxy.connections == 0 and KEY.encode() not in proxy.seen


def test_plain_ws_through_a_non_loopback_proxy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.0.1:3128")

    async def main() -> None:
        # Refused before any byte is sent, naming the proxy (allow_insecure_ws=True opts in, as for hosts).
        with pytest.raises(
            ValueError, match=r"through the non-loopback proxy 10\.255\.0\.1:3128 \(from HTTP_PROXY\)"
        ):
            await transport.connect(f"ws://{REMOTE}:80/", open_timeout=2)
        # Loopback targets are fine: the proxy is not used for them at all.
        with pytest.raises(ConnectError, match=r"cannot connect to 127\.0\.0\.1:1"):
            await transport.connect("ws://127.0.0.1:1/", open_timeout=2)

    asyncio.run(main())


async def test_plain_ws_to_a_remote_host_through_a_loopback_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opted-in insecure ws:// to a remote host still uses the (loopback, hence trusted) proxy.
    async with RecordingProxy() as proxy, serve(_echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with transport.connect(f"ws://{REMOTE}:{port}/", allow_insecure_ws=True) as conn:
            await conn.send_text("via proxy")
            assert await conn.recv() == "via proxy"
    assert proxy.connections == 1 and proxy.seen.startswith(f"CONNECT {REMOTE}:{port} HTTP/1.1\r\n".encode())


async def test_wss_through_https_proxy_and_no_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(REMOTE).configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with RecordingProxy() as proxy, serve(_echo, "127.0.0.1", 0, ssl=ctx) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with transport.connect(
            f"wss://{REMOTE}:{port}/", ca_file=str(ca_file), headers=headers
        ) as conn:
            await conn.send_text("tls via proxy")
            assert await conn.recv() == "tls via proxy"
        assert proxy.connections == 1
        assert KEY.encode() not in proxy.seen  # inside TLS: the proxy sees only ciphertext
        # NO_PROXY entries as curl/requests read them: domain suffix, with a port, or `*`.
        for entry in ("fastvoice.test", f".fastvoice.test:{port}", "*", f"other.example, {REMOTE}"):
            monkeypatch.setenv("NO_PROXY", entry)
            with pytest.raises(ConnectError, match=f"cannot resolve {REMOTE}"):
                await transport.connect(f"wss://{REMOTE}:{port}/", ca_file=str(ca_file), open_timeout=5)
        # An entry for another port does not apply: the proxy is used again.
        monkeypatch.setenv("NO_PROXY", f"{REMOTE}:1")
        async with transport.connect(f"wss://{REMOTE}:{port}/", ca_file=str(ca_file)) as conn:
            await conn.send_text("again")
            assert await conn.recv() == "again"
    assert proxy.connections == 2
