"""TLS (rustls, webpki roots plus `ca_file`) and HTTP CONNECT proxying, with a test CA made here."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from fastvoice import transport
from fastvoice.transport import ConnectError
from websockets.asyncio.server import ServerConnection, serve

# Not loopback (loopback is never proxied) and not resolvable: only the test proxy, which tunnels every
# target to 127.0.0.1, can reach it.
REMOTE = "wss.fastvoice.test"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def _echo(ws: ServerConnection) -> None:
    async for msg in ws:
        await ws.send(msg)


class TlsPeer:
    def __init__(self, ca: trustme.CA) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1", REMOTE).configure_cert(self.ctx)

    async def __aenter__(self) -> TlsPeer:
        self.server = await serve(_echo, "127.0.0.1", 0, ssl=self.ctx, compression=None).__aenter__()
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_tls_with_test_ca_in_ca_file(ca: trustme.CA, ca_file: str) -> None:
    async with TlsPeer(ca) as peer:
        for host in ("localhost", "127.0.0.1"):
            async with transport.connect(f"wss://{host}:{peer.port}/", ca_file=ca_file) as conn:
                await conn.send_text("over tls " * 1000)
                assert await conn.recv() == "over tls " * 1000
                await conn.send_bytes(b"\x00" * 70000)
                assert await conn.recv() == b"\x00" * 70000


async def test_tls_refused_without_the_ca(ca: trustme.CA) -> None:
    async with TlsPeer(ca) as peer:
        with pytest.raises(ConnectError) as info:
            await transport.connect(f"wss://localhost:{peer.port}/")
    assert "certificate" in str(info.value).lower() or "unknownissuer" in str(info.value).lower()


async def test_tls_refused_for_wrong_host_name(ca: trustme.CA, tmp_path: Path) -> None:
    other = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("not-this-host.example").configure_cert(ctx)
    path = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(path))
    async with serve(_echo, "127.0.0.1", 0, ssl=ctx) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(ConnectError):
            await transport.connect(f"wss://localhost:{port}/", ca_file=str(path))


def test_bad_ca_file_is_a_value_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")

    async def main() -> None:
        with pytest.raises(ValueError, match="no PEM certificates"):
            await transport.connect("wss://localhost:1/", ca_file=str(empty))
        with pytest.raises(ValueError, match="cannot read ca_file"):
            await transport.connect("wss://localhost:1/", ca_file=str(tmp_path / "missing.pem"))

    asyncio.run(main())


async def test_https_proxy_connect_tunnel(
    ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        target = head.split(b" ")[1].decode()
        _host, port = target.rsplit(":", 1)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async with TlsPeer(ca) as peer:
        proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        proxy_port = proxy_server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{proxy_port}")
        async with transport.connect(f"wss://{REMOTE}:{peer.port}/", ca_file=ca_file) as conn:
            await conn.send_text("via proxy")
            assert await conn.recv() == "via proxy"
        assert seen and seen[0].startswith(f"CONNECT {REMOTE}:{peer.port} HTTP/1.1\r\n".encode())
        assert b"Proxy-Authorization: Basic dXNlcjpwdw==\r\n" in seen[0]  # base64("user:pw")
        # NO_PROXY bypasses it, and loopback never uses it.
        async with transport.connect(f"wss://localhost:{peer.port}/", ca_file=ca_file) as conn:
            await conn.send_text("direct")
            assert await conn.recv() == "direct"
        monkeypatch.setenv("NO_PROXY", REMOTE)
        with pytest.raises(ConnectError, match=f"cannot resolve {REMOTE}"):
            await transport.connect(f"wss://{REMOTE}:{peer.port}/", ca_file=ca_file)
        assert len(seen) == 1
        proxy_server.close()
