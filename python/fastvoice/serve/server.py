"""The WebSocket endpoint: an aiohttp server handing each connection to its own :class:`Session`."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from fastvoice.serve.brain import BrainSource, brain_factory
from fastvoice.serve.engines import Engines
from fastvoice.serve.session import Session, SessionOptions

__all__ = ["RealtimeServer"]

logger = logging.getLogger("fastvoice.serve")


class RealtimeServer:
    """An offline server speaking the OpenAI Realtime protocol (GA events) on ``ws://host:port/v1/realtime``.

    ``workflow``: what answers (see :mod:`fastvoice.serve.brain`): None for the echo workflow, a
    ``voice.Workflow`` or brain instance (shared by all sessions), a class of either (one instance per
    session), or ``fn(text)``. ``pace``: audio deltas leave at ``pace`` times real time (1.0, like the
    service; 0 sends as fast as the TTS makes them). ``strict``: validate every sent event as a GA
    ``RealtimeServerEvent`` (a failure is a bug: it is logged, kept in :attr:`errors` and ends that response).
    ``stt_pool``: PocketSphinx decoders shared by the sessions (default: one per core); ``warm`` loads them in
    ``start()`` (once per process) rather than on the first turn. ``stream_decoders``: how many turns may be
    transcribed while they are spoken (~95 MB and ~1.4 s of CPU to load each, loaded by ``warm``, per process;
    more simultaneous speakers fall back to transcription after the turn, which adds that time to their
    first-audio latency; 0: always so).

    ``async with RealtimeServer() as srv: ... srv.url`` or ``start()``/``stop()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        workflow: BrainSource = None,
        *,
        pace: float = 1.0,
        strict: bool = True,
        chunk_ms: int = 40,
        stt_pool: int | None = None,
        model: str = "gpt-realtime",
        warm: bool = True,
        stream_decoders: int = 2,
    ) -> None:
        if pace < 0:
            raise ValueError(f"pace must be >= 0, got {pace}")
        if not 10 <= chunk_ms <= 1000:
            raise ValueError(f"chunk_ms must be between 10 and 1000, got {chunk_ms}")
        self._host, self._port = host, port
        self._new_brain = brain_factory(workflow)
        self._model = model
        self._stt_pool = stt_pool
        self._warm = warm
        self._stream_decoders = stream_decoders
        self.options = SessionOptions(pace=pace, strict=strict, chunk_ms=chunk_ms, on_error=self._record)
        self.errors: list[BaseException] = []
        """Failures inside sessions (brain exceptions, events that fail strict validation)."""
        self.sessions: set[Session] = set()
        self._engines: Engines | None = None
        self._runner: web.AppRunner | None = None

    def _record(self, exc: BaseException) -> None:
        self.errors.append(exc)

    async def start(self) -> RealtimeServer:
        self._engines = Engines(self._stt_pool, stream_decoders=self._stream_decoders)
        if self._warm:
            await self._engines.warm()
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for session in list(self.sessions):
            await session.close()
            if not session.ws.closed:
                await session.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RealtimeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v1/realtime`` (clients may add ``?model=...``)."""
        return f"ws://{self._host}:{self._port}/v1/realtime"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "connect with a WebSocket"}},
                status=426,
            )
        assert self._engines is not None
        ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024, autoping=True, timeout=2.0)
        await ws.prepare(request)
        brain: Any = self._new_brain()
        session = Session(ws, self._engines, brain, request.query.get("model", self._model), self.options)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
        return ws
