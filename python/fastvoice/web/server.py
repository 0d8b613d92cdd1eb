"""`fastvoice web`: one page (no build step, no CDN) to talk to an agent, on the bridge core of the phone
issue.

The page captures the microphone in an AudioWorklet (echo cancellation and noise suppression on) and
sends it as binary PCM16 frames of 20 ms at its own rate; the server resamples natively. Reply audio comes
back as binary PCM16 at the page's rate, paced natively 60–80 ms ahead, into a playback worklet with a
small jitter buffer that acknowledges the server's marks as it plays them, so a barge-in truncates the
reply at what was heard. Everything else (transcripts, state, tools, handoffs) is JSON text.

The page's WebSocket needs the per-page token the page was served with and a same-origin ``Origin``
header (or one listed in ``allowed_origins``): nothing else can drive the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import secrets
import time
from importlib import resources
from typing import Any

from aiohttp import web

from fastvoice.realtime import Agent, RunConfig
from fastvoice.realtime import events as ev
from fastvoice.telephony import CallDtmf, CallStart, CallStop, Framing, MediaStreamCaller, bridge_call
from fastvoice.telephony._app import CallServer
from fastvoice.telephony._dialect import CallEvent
from fastvoice.telephony._socket import UpgradeError, take_over
from fastvoice.telephony.bridge import Call

__all__ = ["BrowserDialect", "WebServer"]

log = logging.getLogger("fastvoice.web")

#: Page tokens live this long unused (a page opened and never connected), and at most this many.
TOKEN_TTL_S = 3600.0
MAX_TOKENS = 10_000
#: Sample rates a page may send (AudioContext rates in practice: 44.1 and 48 kHz, sometimes 16–96).
RATES = range(8000, 192_001)


class BrowserDialect:
    """The page's protocol: ``{"event": "start", "sample_rate": N}``, binary PCM16 audio both ways,
    ``mark``/``played`` and ``clear`` as text, ``{"event": "stop"}``."""

    name = "browser"

    def parse(self, text: str) -> CallEvent | None:
        try:
            msg = json.loads(text)
        except ValueError:
            raise ValueError("a page message must be JSON") from None
        if not isinstance(msg, dict):
            raise ValueError("a page message must be a JSON object")
        event = msg.get("event")
        if event == "start":
            rate = msg.get("sample_rate")
            if isinstance(rate, float) and rate.is_integer():
                rate = int(rate)
            if not isinstance(rate, int) or isinstance(rate, bool) or rate not in RATES:
                raise ValueError(f"'sample_rate' must be an integer rate in Hz, got {rate!r}")
            return CallStart("browser", "page", "page", "audio/pcm", rate)
        if event == "stop":
            return CallStop("stop")
        if event == "dtmf" and isinstance(msg.get("digit"), str):
            return CallDtmf(msg["digit"])
        return None

    def framing(self, start: CallStart) -> Framing:
        return Framing(
            media_prefix="",
            media_suffix="",
            mark_prefix='{"event":"mark","name":"',
            mark_suffix='"}',
            clear='{"event":"clear"}',
            ack_event="played",
            binary=True,
        )


def _static(name: str) -> bytes:
    return resources.files("fastvoice.web").joinpath("static", name).read_bytes()


def _page_event(event: Any) -> dict[str, Any] | None:
    """What the page shows of a session event."""
    match event:
        case ev.RealtimeTranscriptEvent(role=role, text=text, is_final=final, item_id=item):
            return {"event": "transcript", "role": role, "text": text, "final": final, "item_id": item}
        case ev.RealtimeAgentStateEvent(state=state):
            return {"event": "state", "state": state}
        case ev.RealtimeToolStartEvent(name=name, args=args):
            return {"event": "tool", "name": name, "args": args}
        case ev.RealtimeToolEndEvent(name=name, output=output):
            return {"event": "tool", "name": name, "output": str(output)}
        case ev.RealtimeHandoffEvent(from_agent=src, to_agent=dst):
            return {"event": "handoff", "from": src.name, "to": dst.name}
        case ev.RealtimeErrorEvent(error=error):
            message = error.get("message") if isinstance(error, dict) else None
            return {"event": "error", "message": str(message or error)}
    return None


class WebServer(CallServer):
    """The page and its WebSocket for ``agent``: ``async with WebServer(agent, url=...) as srv`` (the page
    is at ``srv.base_url``), or ``start()``/``stop()``; ``srv.app`` is the aiohttp application."""

    def __init__(
        self,
        agent: Agent,
        *,
        config: RunConfig | None = None,
        api_key: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        title: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        max_sessions: int = 50,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.agent = agent
        self.config = config
        self._api_key = api_key
        self._url = url
        self.title = title or agent.name
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.max_sessions = max_sessions
        self._session_options = session_options
        self._tokens: dict[str, float] = {}
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/static/{name}", self._asset)
        self.app.router.add_get("/ws", self._socket)

    def __repr__(self) -> str:
        return f"<fastvoice.web.WebServer {self.base_url} sessions={len(self.calls)}>"

    @property
    def base_url(self) -> str:
        """The page's address."""
        return super().base_url + "/"

    # ---- routes

    async def _page(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        self._tokens = {t: at for t, at in self._tokens.items() if now - at < TOKEN_TTL_S}
        while len(self._tokens) >= MAX_TOKENS:  # page loads that never connect cannot grow this forever
            self._tokens.pop(next(iter(self._tokens)))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now
        page = _static("index.html").decode()
        page = page.replace("{{TOKEN}}", token).replace("{{TITLE}}", html.escape(self.title))
        headers = {"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'self'"}
        return web.Response(text=page, content_type="text/html", headers=headers)

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"app.js": "text/javascript", "worklets.js": "text/javascript", "style.css": "text/css"}
        if name not in types:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=types[name])

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin", "").rstrip("/")
        own = {f"http://{request.host}", f"https://{request.host}"}
        return bool(origin) and (origin in own or origin in self.allowed_origins)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_ok(request):
            log.warning("web: refused a socket from origin %r", request.headers.get("Origin"))
            return web.Response(status=403, text="origin not allowed")
        token = request.query.get("token", "")
        if self._tokens.pop(token, None) is None:  # one socket per page load
            return web.Response(status=403, text="unknown or used page token")
        if len(self.calls) >= self.max_sessions:
            return web.Response(status=503, text="too many sessions")
        try:
            conn = await take_over(request)
        except UpgradeError as exc:
            return web.Response(status=400, text=str(exc))
        caller = MediaStreamCaller(conn, BrowserDialect())
        try:
            await caller.wait_start(10.0)
            call = await bridge_call(
                caller,
                self.agent,
                config=self.config,
                api_key=self._api_key,
                url=self._url,
                session_format="pcm16",
                session_options=self._session_options,
            )
        except Exception as exc:
            log.warning("web: session not started: %s", exc)
            with contextlib.suppress(Exception):
                await conn.send_text(json.dumps({"event": "error", "message": str(exc)}))
            await caller.close()
            return web.Response()
        self.calls.add(call)
        forward = asyncio.create_task(self._forward(call))
        try:
            await call.wait()
        finally:
            self.calls.discard(call)
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
        return web.Response()

    async def _forward(self, call: Call) -> None:
        conn = call.caller.conn  # type: ignore[attr-defined]
        async for event in call.events():
            msg = _page_event(event)
            if msg is not None:
                try:
                    await conn.send_text(json.dumps(msg))
                except Exception:
                    return
