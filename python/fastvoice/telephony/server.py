"""The phone server: webhook answers and media WebSockets for each provider, on one aiohttp app.

Routes (``{p}`` is ``twilio``, ``telnyx`` or ``plivo``):

- ``POST /{p}/voice``: the provider's call webhook, answered with the XML that connects the call to a
  bidirectional stream at ``/{p}/media`` (TwiML ``<Connect><Stream>``, TeXML, Plivo ``<Stream>``);
- ``GET /{p}/media``: the media WebSocket, handed to the native transport and bridged to a session.

With ``twilio_auth_token`` set, ``POST /twilio/voice`` and the ``/twilio/media`` upgrade need a valid
``X-Twilio-Signature`` (403 otherwise). The stream URL in the answer is ``public_url`` when given (what
the provider can reach, e.g. behind a TLS proxy), else the request's own host and scheme
(``X-Forwarded-Proto``/``-Host`` honoured only with ``trust_forwarded=True``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from fastvoice.realtime import Agent, RunConfig
from fastvoice.telephony import plivo, telnyx, twilio
from fastvoice.telephony._app import CallServer
from fastvoice.telephony._dialect import Dialect
from fastvoice.telephony._socket import UpgradeError, take_over
from fastvoice.telephony.bridge import Call, MediaStreamCaller, bridge_call

__all__ = ["PhoneServer"]

log = logging.getLogger("fastvoice.telephony")

OnCall = Callable[[Call], Awaitable[None]]

_DIALECTS: dict[str, Dialect] = {
    "twilio": twilio.TwilioDialect(),
    "telnyx": telnyx.TelnyxDialect(),
    "plivo": plivo.PlivoDialect(),
}


class PhoneServer(CallServer):
    """Serves phone calls to ``agent``: ``async with PhoneServer(agent, url=...) as srv`` or
    ``start()``/``stop()``; ``srv.app`` is the aiohttp application, to mount elsewhere if wanted.

    ``url``/``api_key``/``config`` choose the realtime server as for ``realtime.start_session``;
    ``on_call(call)`` runs for each call (its end does not end the call); ``max_calls`` bounds the
    media streams at once (more get 503, before any session is opened); ``dtmf_as_text`` also sends
    the typed digits (at ``#`` or after a 1.5 s pause) to the model as one user message; ``greet``
    has the agent speak first."""

    def __init__(
        self,
        agent: Agent,
        *,
        config: RunConfig | None = None,
        api_key: str | None = None,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        public_url: str | None = None,
        trust_forwarded: bool = False,
        twilio_auth_token: str | None = None,
        session_format: Literal["caller", "pcm16"] = "caller",
        dtmf_as_text: bool = False,
        greet: bool = False,
        on_call: OnCall | None = None,
        start_timeout: float = 10.0,
        max_calls: int = 200,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be http(s)://host[:port], got {public_url!r}")
        super().__init__(host, port)
        self.agent = agent
        self.config = config
        self._api_key = api_key
        self._url = url
        self.public_url = public_url.rstrip("/") if public_url else None
        self.trust_forwarded = trust_forwarded
        self._twilio_token = twilio_auth_token
        self.session_format: Literal["caller", "pcm16"] = session_format
        self.dtmf_as_text = dtmf_as_text
        self.greet = greet
        self.on_call = on_call
        self.start_timeout = start_timeout
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls}")
        self.max_calls = max_calls
        self._streams = 0  # media sockets being set up or bridged
        self._session_options = session_options
        for name in _DIALECTS:
            self.app.router.add_post(f"/{name}/voice", self._answer)
            self.app.router.add_get(f"/{name}/media", self._media)

    def __repr__(self) -> str:
        # The realtime URL may carry a query; the key never appears.
        return f"<fastvoice.telephony.PhoneServer {self.base_url} calls={len(self.calls)}>"

    # ---- routes

    def _external(self, request: web.Request) -> tuple[str, str]:
        """(scheme, host) the provider used to reach us."""
        if self.public_url is not None:
            scheme, _, host = self.public_url.partition("://")
            return scheme, host
        scheme, host = request.scheme, request.host
        if self.trust_forwarded:
            scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
            host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
        return scheme, host

    async def _answer(self, request: web.Request) -> web.Response:
        provider = request.path.split("/")[1]
        scheme, host = self._external(request)
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        if provider == "twilio" and self._twilio_token is not None:
            signed_url = f"{scheme}://{host}{request.path_qs}"
            header = request.headers.get("X-Twilio-Signature")
            if not twilio.valid_signature(self._twilio_token, header, signed_url, params):
                log.warning("twilio: refused a call webhook with a bad or missing signature")
                return web.Response(status=403, text="invalid X-Twilio-Signature")
        ws = f"{'wss' if scheme == 'https' else 'ws'}://{host}/{provider}/media"
        if provider == "twilio":
            body = twilio.twiml_connect_stream(
                ws, {"From": params.get("From", "")} if "From" in params else None
            )
        elif provider == "telnyx":
            body = telnyx.texml_connect_stream(ws)
        else:
            body = plivo.xml_stream(ws)
        return web.Response(text=body, content_type="application/xml")

    async def _media(self, request: web.Request) -> web.StreamResponse:
        dialect = _DIALECTS[request.path.split("/")[1]]
        if dialect.name == "twilio" and self._twilio_token is not None:
            # Twilio signs the stream's upgrade request too (its URL, no parameters): without this
            # anyone who learns the URL could open sessions on your key.
            scheme, host = self._external(request)
            signed_url = f"{'wss' if scheme == 'https' else 'ws'}://{host}{request.path_qs}"
            header = request.headers.get("X-Twilio-Signature")
            if not twilio.valid_signature(self._twilio_token, header, signed_url):
                log.warning("twilio: refused a media stream with a bad or missing signature")
                return web.Response(status=403, text="invalid X-Twilio-Signature")
        if self._streams >= self.max_calls:
            log.warning("%s: refused a call: %d calls already (max_calls)", dialect.name, self._streams)
            return web.Response(status=503, text="too many calls")
        self._streams += 1
        try:
            return await self._bridge(request, dialect)
        finally:
            self._streams -= 1

    async def _bridge(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        try:
            conn = await take_over(request)
        except UpgradeError as exc:
            return web.Response(status=400, text=str(exc))
        caller = MediaStreamCaller(conn, dialect)
        try:
            await caller.wait_start(self.start_timeout)
            call = await bridge_call(
                caller,
                self.agent,
                config=self.config,
                api_key=self._api_key,
                url=self._url,
                session_format=self.session_format,
                dtmf_as_text=self.dtmf_as_text,
                greet=self.greet,
                session_options=self._session_options,
            )
        except Exception as exc:  # the caller hears a hang-up; the server keeps serving
            log.warning("%s: call not bridged: %s", dialect.name, exc)
            await caller.close()
            return web.Response()
        self.calls.add(call)
        app_task = asyncio.create_task(self._run_on_call(call)) if self.on_call is not None else None
        try:
            await call.wait()
        finally:
            self.calls.discard(call)
            if app_task is not None:
                app_task.cancel()
                await asyncio.gather(app_task, return_exceptions=True)
        return web.Response()

    async def _run_on_call(self, call: Call) -> None:
        assert self.on_call is not None
        try:
            await self.on_call(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_call failed for %r", call)
