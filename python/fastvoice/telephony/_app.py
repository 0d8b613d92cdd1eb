"""What the phone server and the web page's server share: an aiohttp app that serves calls, started and
stopped like the other fastvoice servers, hanging up every live call when it stops."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Self

from aiohttp import web

if TYPE_CHECKING:
    from fastvoice.telephony.bridge import Call

__all__ = ["CallServer"]


class CallServer:
    """``async with`` it, or ``start()``/``stop()``; ``app`` is the aiohttp application (mountable)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self.app = web.Application()
        self.calls: set[Call] = set()
        self._runner: web.AppRunner | None = None
        self._bound: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._bound or self._port}"

    async def start(self) -> Self:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._bound = runner.addresses[0][1]
        self._runner = runner
        return self

    async def stop(self) -> None:
        for call in list(self.calls):
            with contextlib.suppress(Exception):
                await call.hangup()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
