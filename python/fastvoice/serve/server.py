"""The WebSocket endpoint: an aiohttp server handing each connection to its own :class:`Session`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from fastvoice.serve.access import Access, http_error, is_loopback_host
from fastvoice.serve.api import MAX_BODY_BYTES, ApiContext, add_routes, errors_middleware
from fastvoice.serve.brain import BrainSource, brain_factory
from fastvoice.serve.engines import Engines, make_engines
from fastvoice.serve.session import Session, SessionOptions
from fastvoice.serve.transcribe import TranscriptionSession

__all__ = ["RealtimeServer"]

logger = logging.getLogger("fastvoice.serve")


class RealtimeServer:
    """An offline server speaking the OpenAI Realtime protocol (GA events) on ``ws://host:port/v1/realtime``.

    ``workflow``: what answers (see :mod:`fastvoice.serve.brain`): None for the echo workflow, a
    ``voice.Workflow`` or brain instance (shared by all sessions), a class of either (one instance per
    session), or ``fn(text)``. ``pace``: audio deltas leave at ``pace`` times real time (1.0, like the
    service; 0 sends as fast as the TTS makes them). ``strict``: validate every sent event as a GA
    ``RealtimeServerEvent`` (a failure is a bug: it is logged, kept in :attr:`errors` and ends that response).
    ``engines``: the offline speech engines, ``"local"`` (Whisper tiny.en and a Piper voice, partial
    transcripts while the user speaks) or ``"light"`` (PocketSphinx and eSpeak NG); None: local when
    installed, else light. ``warm`` loads the models in ``start()`` (once per process) rather than on the
    first turn. ``stream_decoders``: 0 transcribes every turn after it ends; otherwise turns are transcribed
    while spoken (local: any number, sharing one model; light: at most this many at once, ~95 MB and ~1.4 s
    to load each, the rest after the turn). ``stt_pool`` (light): PocketSphinx decoders for whole-turn
    transcription shared by the sessions (default: one per core).

    Access (checked before the WebSocket upgrade; refusals are HTTP errors with OpenAI's error body):

    - ``allowed_origins``: an upgrade whose ``Origin`` header is not loopback (``http(s)://localhost``,
      127.0.0.0/8 or ``[::1]``, any port) gets 403 unless its origin is listed here (exact
      ``scheme://host[:port]``). Requests without ``Origin`` (non-browser clients) pass. This stops any web
      page the user visits from driving the server.
    - ``api_key``: when set, a client must send ``Authorization: Bearer KEY`` (what the ``openai`` package
      and fastvoice's client send) or, from a browser, the subprotocols ``realtime,
      openai-insecure-api-key.KEY``; otherwise 401. The key is compared in constant time and never logged.
      Binding a non-loopback ``host`` without a key logs a warning.

    Limits: ``max_sessions`` concurrent sessions (the next upgrade gets 503 until one closes);
    ``handshake_timeout`` seconds for a TCP connection to complete its upgrade (idle or half-sent requests
    are closed then); ``idle_timeout`` seconds a session may go without sending an event while no response
    or transcription is running (it then gets an ``error`` event with code ``idle_timeout`` and is closed;
    None: never).

    ``reuse_port``: listen with ``SO_REUSEPORT``, so other processes can serve the same port (what
    ``fastvoice serve --workers N`` does; the kernel spreads new connections over them). Limits are per
    process.

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
        engines: str | None = None,
        api_key: str | None = None,
        allowed_origins: Iterable[str] = (),
        max_sessions: int = 64,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = 300.0,
        reuse_port: bool = False,
    ) -> None:
        if pace < 0:
            raise ValueError(f"pace must be >= 0, got {pace}")
        if not 10 <= chunk_ms <= 1000:
            raise ValueError(f"chunk_ms must be between 10 and 1000, got {chunk_ms}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        if not handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be > 0 seconds, got {handshake_timeout}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds (or None), got {idle_timeout}")
        if isinstance(allowed_origins, str):
            allowed_origins = [allowed_origins]
        self._access = Access(api_key, allowed_origins)
        self._host, self._port = host, port
        self._reuse_port = reuse_port
        self._new_brain = brain_factory(workflow)
        self._model = model
        self._stt_pool = stt_pool
        self._warm = warm
        self._stream_decoders = stream_decoders
        if engines not in (None, "local", "light"):
            raise ValueError(f'engines must be "local", "light" or None, got {engines!r}')
        self._engine_kind = engines
        self.max_sessions = max_sessions
        self.handshake_timeout = handshake_timeout
        self.options = SessionOptions(
            pace=pace, strict=strict, chunk_ms=chunk_ms, on_error=self._record, idle_timeout=idle_timeout
        )
        self.errors: list[BaseException] = []
        """Failures inside sessions (brain exceptions, events that fail strict validation)."""
        self.sessions: set[Session] = set()
        self._engines: Engines | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        # Connections that have not yet sent a whole request, and when they must have.
        self._deadlines: dict[object, asyncio.TimerHandle] = {}
        self._admitted = 0  # upgrades admitted and not yet finished (sessions plus those mid-handshake)
        self._cap_warned = False

    def __repr__(self) -> str:
        return f"RealtimeServer(url={self.url!r}, {self._access!r}, sessions={len(self.sessions)})"

    def _record(self, exc: BaseException) -> None:
        self.errors.append(exc)

    async def start(self) -> RealtimeServer:
        self._engines = make_engines(self._engine_kind, self._stt_pool, self._stream_decoders)
        if self._warm:
            await self._engines.warm()
        app = web.Application(middlewares=[self._track, errors_middleware], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/v1/realtime", self._serve)
        app.router.add_get("/", self._serve)
        add_routes(app, ApiContext(self._engines, self._new_brain, self._access))
        # keepalive_timeout closes a connection left idle after a plain HTTP request; the handshake deadline
        # (below) covers connections that never complete one, which aiohttp before 3.14 never closes.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, keepalive_timeout=self.handshake_timeout
        )
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._accept, self._host, self._port, reuse_port=self._reuse_port or None
        )
        self._port = self._listener.sockets[0].getsockname()[1]
        if not self._access.requires_key and not is_loopback_host(self._host):
            logger.warning(
                "fastvoice serve listens on %s without an API key: anyone who can reach port %d can use "
                "it. Pass --api-key (or set FASTVOICE_SERVE_API_KEY) to require one.",
                self._host or "all interfaces",
                self._port,
            )
        return self

    def _accept(self) -> asyncio.Protocol:
        """Protocol factory for the listener: aiohttp's connection handler, with a deadline to upgrade."""
        assert self._runner is not None and self._runner.server is not None
        handler = self._runner.server()
        loop = asyncio.get_running_loop()
        self._deadlines[handler] = loop.call_later(self.handshake_timeout, self._handshake_expired, handler)
        return handler

    def _handshake_expired(self, handler: Any) -> None:
        if self._deadlines.pop(handler, None) is None:
            return  # it sent a request: a session runs, or keep-alive idling is aiohttp's job
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            logger.debug("closing a connection that did not upgrade within %gs", self.handshake_timeout)
            transport.close()

    async def stop(self) -> None:
        for deadline in self._deadlines.values():
            deadline.cancel()
        self._deadlines.clear()
        if self._listener is not None:
            self._listener.close()
        for session in list(self.sessions):
            await session.close()
            if not session.ws.closed:
                await session.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

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
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{self._port}/v1/realtime"

    @web.middleware
    async def _track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A whole request arrived on this connection: the handshake deadline no longer applies to it."""
        deadline = self._deadlines.pop(request.protocol, None)
        if deadline is not None:
            deadline.cancel()
        response: web.StreamResponse = await handler(request)
        return response

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: the ``base_url`` for the ``openai`` client and fastvoice's providers."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}/v1"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return http_error(426, "connect with a WebSocket", type="invalid_request_error", code=None)
        refusal = self._access.refusal(request.headers)
        if refusal is not None:
            logger.info("refused a connection from %s (HTTP %d)", request.remote, refusal.status)
            return refusal
        if self._admitted >= self.max_sessions:
            # Warn once per time the cap is reached; a client retrying in a loop must not flood the log.
            level = logging.INFO if self._cap_warned else logging.WARNING
            self._cap_warned = True
            logger.log(level, "refused a session: %d are open (max_sessions)", self._admitted)
            response = http_error(
                503,
                f"The server is at its limit of {self.max_sessions} concurrent sessions; retry when one "
                "closes (fastvoice serve --max-sessions raises the limit).",
                type="server_error",
                code="too_many_sessions",
            )
            response.headers["Retry-After"] = "1"
            return response
        assert self._engines is not None
        self._admitted += 1
        try:
            # Answer the `realtime` subprotocol when offered: a browser that sent subprotocols (the key form
            # needs them) fails the handshake if none comes back.
            ws = web.WebSocketResponse(
                max_msg_size=32 * 1024 * 1024, autoping=True, timeout=2.0, protocols=("realtime",)
            )
            await ws.prepare(request)
            brain: Any = self._new_brain()
            kind = TranscriptionSession if request.query.get("intent") == "transcription" else Session
            session = kind(ws, self._engines, brain, request.query.get("model", self._model), self.options)
            self.sessions.add(session)
            try:
                await session.run()
            finally:
                self.sessions.discard(session)
            return ws
        finally:
            self._admitted -= 1
            self._cap_warned = False
