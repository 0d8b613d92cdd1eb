"""Hand an aiohttp WebSocket upgrade to the native transport.

aiohttp routes the request (so the media WebSocket shares a port and an app with the webhooks); this
module then answers the upgrade itself and gives a duplicate of the socket to the Rust runtime, which
speaks WebSocket on it from then on. No frame of the call passes through the asyncio loop unless it
is one Python wants (a start, a DTMF digit, a stop).

Only plain TCP can be handed over: behind TLS terminated by aiohttp the socket carries TLS records,
so a TLS deployment terminates TLS in front (a reverse proxy), as the docs describe.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from typing import TYPE_CHECKING

from fastvoice import _fastvoice
from fastvoice.transport import Connection
from fastvoice.transport._loop import loop_waker

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["UpgradeError", "take_over"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class UpgradeError(ValueError):
    """A request to a media-stream route that is not a valid WebSocket upgrade (answered 400)."""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _check(request: web.Request) -> str:
    h = request.headers
    if request.method != "GET":
        raise UpgradeError(f"a WebSocket upgrade must be a GET, got {request.method}")
    if h.get("Upgrade", "").lower() != "websocket":
        raise UpgradeError("missing 'Upgrade: websocket'")
    if "upgrade" not in [t.strip().lower() for t in h.get("Connection", "").split(",")]:
        raise UpgradeError("missing 'Connection: Upgrade'")
    if h.get("Sec-WebSocket-Version") != "13":
        raise UpgradeError("'Sec-WebSocket-Version' must be 13")
    key = h.get("Sec-WebSocket-Key", "")
    try:
        ok = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        ok = False
    if not ok:
        raise UpgradeError("'Sec-WebSocket-Key' must be 16 bytes in base64")
    return key


async def take_over(
    request: web.Request,
    *,
    max_message_size: int = 1 << 20,
    ping_interval: float | None = 20.0,
    ping_timeout: float = 20.0,
    close_timeout: float = 5.0,
) -> Connection:
    """Answer ``request``'s upgrade and return the native connection now speaking on its socket.

    Raises :class:`UpgradeError` for a request that is not a WebSocket upgrade, and ``RuntimeError``
    when the socket cannot be handed over (TLS terminated by aiohttp)."""
    key = _check(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away before the upgrade")
    if transport.get_extra_info("sslcontext") is not None:
        raise RuntimeError(
            "media streams cannot be handed to the native transport through aiohttp's TLS; "
            "terminate TLS in a reverse proxy in front of fastvoice"
        )
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        raise RuntimeError("no TCP socket to hand over")
    # aiohttp reads nothing more: a WebSocket client sends no frame before the 101 it awaits.
    transport.pause_reading()
    fd = os.dup(sock.fileno())
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode("ascii")
    waker = loop_waker()
    try:
        pending = _fastvoice.transport_accept(
            fd,
            head,
            waker.native,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            max_queue=1024,
            max_queue_bytes=8 << 20,
        )
    except BaseException:
        transport.abort()
        raise
    # aiohttp's transport lets go of its descriptor; ours keeps the connection open.
    transport.abort()
    try:
        while True:
            native = pending.result()
            if native is not None:
                return Connection(native, waker, f"ws://{request.host}{request.path}")
            await waker.wait(pending.id)
    except BaseException:
        pending.cancel()
        raise
