"""Phone calls through OpenAI's SIP endpoint: the Realtime API answers the call itself, we steer it.

A SIP trunk points at ``sip:$PROJECT_ID@sip.api.openai.com;transport=tls``. For each call OpenAI sends a
``realtime.call.incoming`` webhook (signed per Standard Webhooks); the application verifies it
(:func:`verify_webhook`, or :func:`make_sip_handler` as an aiohttp route), then accepts the call with the
agent's session config (:meth:`SipCalls.accept`, the same ``session`` object a WebSocket session sends) or
rejects it. The caller's audio flows between the trunk and OpenAI, never through us: :func:`attach` opens the
call's Realtime WebSocket (``?call_id=``), a normal :class:`~fastvoice.realtime.Session`, through which
tools, handoffs and events run as usual. :meth:`SipCalls.refer` transfers the call, :meth:`SipCalls.hangup`
ends it.

Signatures are checked exactly as the ``openai`` package's ``client.webhooks.verify_signature`` does (same
replay window, same secret decoding, any of several signatures may match), without needing the package.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from fastvoice.realtime import _protocol as P
from fastvoice.realtime.agent import Agent
from fastvoice.realtime.auth import redact, require_api_key, scrub
from fastvoice.realtime.config import RunConfig
from fastvoice.realtime.session import OPENAI_REALTIME_URL, Session

if TYPE_CHECKING:  # aiohttp is imported when a client or handler is used, not by `import fastvoice`
    import aiohttp
    from aiohttp import web

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TOLERANCE",
    "IncomingCall",
    "SipCallError",
    "SipCalls",
    "SipWebhookHandler",
    "WebhookEvent",
    "WebhookVerificationError",
    "attach",
    "call_url",
    "make_sip_handler",
    "sign_webhook",
    "verify_signature",
    "verify_webhook",
]

logger = logging.getLogger("fastvoice")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TOLERANCE = 300
"""Seconds a webhook's timestamp may be off from our clock (either way), as in the ``openai`` package."""

INCOMING_CALL = "realtime.call.incoming"


class WebhookVerificationError(ValueError):
    """A webhook that is not provably from OpenAI (a missing header, a timestamp outside the replay window,
    no matching signature), or whose verified body is not the event it claims (the field is named). The
    message never contains the secret."""


class SipCallError(RuntimeError):
    """An accept/reject/hangup/refer request failed. ``status`` is the HTTP status (0: no answer: DNS, TCP,
    timeout), ``code`` and ``error_type`` come from the API's error body; the message names the call and
    never contains the API key (it is scrubbed if the server echoes it)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.error_type = error_type


# ---- webhooks
# -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified webhook event of another type than ``realtime.call.incoming`` (kept whole in ``data``)."""

    type: str
    event_id: str
    created_at: int
    data: Mapping[str, Any]
    webhook_id: str


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A verified ``realtime.call.incoming``: accept or reject ``call_id``. ``sip_headers`` are the INVITE's
    headers in order, repeats kept (untrusted caller metadata: ``From``, ``To``, ``Call-ID``...);
    ``webhook_id`` is the delivery's ``webhook-id`` (the same on a retried delivery)."""

    call_id: str
    sip_headers: tuple[tuple[str, str], ...]
    event_id: str
    created_at: int
    webhook_id: str = ""
    sip_media_security: str | None = None
    """``"srtp"``, ``"rtp"`` (unencrypted media) or ``None`` when OpenAI does not know."""

    def header(self, name: str) -> str | None:
        """The first SIP header called ``name`` (case-insensitive), or ``None``."""
        lower = name.lower()
        return next((v for k, v in self.sip_headers if k.lower() == lower), None)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name and isinstance(value, str):
            return value
    raise WebhookVerificationError(f"missing {name} header")


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise TypeError("the webhook secret must be a non-empty str (whsec_...)")
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret[len("whsec_") :])
    except binascii.Error:
        raise WebhookVerificationError("the webhook secret is not valid base64 after 'whsec_'") from None


def _signature(key: bytes, webhook_id: str, timestamp: str, body: str) -> str:
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _body_text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError("body is not UTF-8") from None


def sign_webhook(body: bytes | str, secret: str, *, webhook_id: str, timestamp: int) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers OpenAI would send with
    ``body`` (for tests and local senders such as :class:`~fastvoice.testing.sip_server.FakeSipServer`)."""
    sig = _signature(_secret_key(secret), webhook_id, str(timestamp), _body_text(body))
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{sig}"}


def verify_signature(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``body`` carries a valid signature by ``secret``.

    ``secret`` is the endpoint's signing secret: ``whsec_`` then base64 (decoded), any other string is used
    as its UTF-8 bytes. ``webhook-signature`` may hold several space-separated ``v1,<base64>`` values (during
    a secret rotation): one matching is enough. ``webhook-timestamp`` must be within ``tolerance`` seconds
    of ``now`` (default: the clock), so a captured delivery cannot be replayed later.
    """
    sig_header = _header(headers, "webhook-signature")
    timestamp = _header(headers, "webhook-timestamp")
    webhook_id = _header(headers, "webhook-id")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    now_s = int(time.time() if now is None else now)
    if now_s - sent_at > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance} s old")
    if sent_at > now_s + tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance} s in the future")
    expected = _signature(_secret_key(secret), webhook_id, timestamp, _body_text(body)).encode()
    # Like the openai package: a value without the "v1," prefix is compared whole.
    given = [part.removeprefix("v1,").encode() for part in sig_header.split()]
    # Every candidate is compared (no early exit), each in constant time.
    if not sum(hmac.compare_digest(expected, g) for g in given):
        raise WebhookVerificationError("no webhook-signature matches the body (wrong secret, or altered)")


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value):
        what = "a non-empty string" if kind is str else f"a {kind.__name__}"
        raise WebhookVerificationError(f"{where}{name}: must be {what}, got {type(value).__name__}")
    return value


def _parse_call(event: Mapping[str, Any], data: Mapping[str, Any], webhook_id: str) -> IncomingCall:
    headers: list[tuple[str, str]] = []
    raw = data.get("sip_headers")
    if not isinstance(raw, list):
        raise WebhookVerificationError(f"data.sip_headers: must be a list, got {type(raw).__name__}")
    for i, h in enumerate(raw):
        if (
            not isinstance(h, Mapping)
            or not isinstance(h.get("name"), str)
            or not isinstance(h.get("value"), str)
        ):
            raise WebhookVerificationError(
                f"data.sip_headers[{i}]: must be an object with string name and value"
            )
        headers.append((h["name"], h["value"]))
    security = data.get("sip_media_security")
    if security is not None and not isinstance(security, str):
        raise WebhookVerificationError("data.sip_media_security: must be a string or null")
    return IncomingCall(
        call_id=_field(data, "call_id", str, "data."),
        sip_headers=tuple(headers),
        event_id=event["id"],
        created_at=event["created_at"],
        webhook_id=webhook_id,
        sip_media_security=security,
    )


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> IncomingCall | WebhookEvent:
    """Verify a delivery (see :func:`verify_signature`) and parse it: an :class:`IncomingCall` for
    ``realtime.call.incoming``, a :class:`WebhookEvent` for any other type. Raises
    :class:`WebhookVerificationError` for a bad signature or a malformed event (naming the field)."""
    verify_signature(body, headers, secret, tolerance=tolerance, now=now)
    try:
        event = json.loads(_body_text(body))
    except json.JSONDecodeError:
        raise WebhookVerificationError("body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError(f"body: must be a JSON object, got {type(event).__name__}")
    _field(event, "id", str, "")
    _field(event, "type", str, "")
    _field(event, "created_at", int, "")
    data = _field(event, "data", dict, "")
    webhook_id = _header(headers, "webhook-id")
    if event["type"] == INCOMING_CALL:
        return _parse_call(event, data, webhook_id)
    return WebhookEvent(event["type"], event["id"], event["created_at"], data, webhook_id)


# ---- the calls API
# --------------------------------------------------------------------------------------------------


def _call_path(call_id: str) -> str:
    if not isinstance(call_id, str) or not call_id:
        raise ValueError(f"call_id must be a non-empty str, got {call_id!r}")
    if call_id in (".", ".."):  # would climb the URL path (the openai package refuses these too)
        raise ValueError(f"call_id must not be {call_id!r}")
    return quote(call_id, safe="")


def call_url(call_id: str, url: str | None = None) -> str:
    """The Realtime WebSocket URL of an accepted call: ``url`` (default OpenAI's endpoint) with
    ``?call_id=`` (and no ``model=``: the model was chosen on accept)."""
    base = url or OPENAI_REALTIME_URL
    return f"{base}{'&' if '?' in base else '?'}call_id={_call_path(call_id)}"


def _ws_base(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :] + "/realtime"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :] + "/realtime"
    raise ValueError(f"base_url must be http(s)://..., got {base_url.split('?')[0]!r}")


async def attach(
    call_id: str,
    agent: Agent,
    config: RunConfig | None = None,
    *,
    api_key: str | None = None,
    url: str | None = None,
    reconnect: bool = True,
    ready_timeout: float | None = 10.0,
    connect_kwargs: dict[str, Any] | None = None,
) -> Session:
    """Open the Realtime session of an accepted call: a started :class:`~fastvoice.realtime.Session` on
    :func:`call_url`. Its first ``session.update`` re-sends ``agent``'s config (pass the ``config`` the call
    was accepted with), then tools and handoffs run through it as in any session. ``url``: the Realtime
    endpoint (default ``wss://api.openai.com/v1/realtime``)."""
    session = Session(
        agent,
        config,
        api_key=api_key,
        url=call_url(call_id, url),
        reconnect=reconnect,
        ready_timeout=ready_timeout,
        connect_kwargs=connect_kwargs,
    )
    return await session.start()


class SipCalls:
    """The ``/realtime/calls/{call_id}/...`` endpoints: accept, reject, hang up, transfer, and
    :meth:`attach` to the accepted call's session. One aiohttp session, kept open until :meth:`aclose`
    (or ``async with``). Requests are not retried: a call rings for seconds only."""

    def __init__(
        self, api_key: str | None = None, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 10.0
    ) -> None:
        self._key = require_api_key(api_key)
        self.base_url = base_url.rstrip("/")
        self._ws_url = _ws_base(self.base_url)
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"SipCalls(base_url={self.base_url!r}, api_key={redact(self._key)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _post(self, call_id: str, verb: str, body: Mapping[str, Any] | None) -> None:
        import aiohttp

        path = f"/realtime/calls/{_call_path(call_id)}/{verb}"
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"Authorization": f"Bearer {self._key}"},
            )
        what = f"{verb} of call {call_id}"
        try:
            kwargs: dict[str, Any] = {"json": dict(body)} if body is not None else {}
            async with self._http.post(self.base_url + path, **kwargs) as resp:
                if resp.status < 300:
                    return
                raw = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The type only: an exception's text may quote what a proxy answered.
            raise SipCallError(0, scrub(f"{what} failed: {type(exc).__name__}", self._key)) from None
        message, code, etype = raw.strip()[:300], None, None
        try:
            err = json.loads(raw).get("error")
        except (ValueError, AttributeError):
            err = None
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            code = err["code"] if isinstance(err.get("code"), str) else None
            etype = err["type"] if isinstance(err.get("type"), str) else None
        hint = " (check the API key)" if status == 401 else ""
        text = scrub(f"{what} failed: HTTP {status}{hint}: {message}", self._key)
        raise SipCallError(status, text, code=code, error_type=etype)

    async def accept(self, call_id: str, agent: Agent, config: RunConfig | None = None) -> dict[str, Any]:
        """Answer the call with ``agent`` under ``config``: the same ``session`` object a WebSocket session
        sends first (model, instructions, voice, audio formats, tools and handoff tools, tracing). Returns
        what was sent."""
        if not isinstance(agent, Agent):
            raise TypeError(f"accept needs a fastvoice.realtime.Agent, got {type(agent).__name__}")
        session = P.build_session_config(agent, config)
        await self._post(call_id, "accept", session)
        return session

    async def reject(self, call_id: str, status_code: int = 603) -> None:
        """Refuse the call with a SIP status (603 Decline by default; 486 Busy Here, 480...)."""
        if isinstance(status_code, bool) or not isinstance(status_code, int) or not 300 <= status_code <= 699:
            raise ValueError(f"status_code must be a SIP final status (300-699), got {status_code!r}")
        await self._post(call_id, "reject", {"status_code": status_code})

    async def hangup(self, call_id: str) -> None:
        """End the call (the attached session is closed by the server)."""
        await self._post(call_id, "hangup", None)

    async def refer(self, call_id: str, target_uri: str) -> None:
        """Transfer the call (SIP REFER) to ``target_uri``: ``tel:+14155550123`` or ``sip:agent@host``."""
        if not isinstance(target_uri, str) or not target_uri.partition(":")[2]:
            raise ValueError(f"target_uri must be a tel:, sip: or sips: URI, got {target_uri!r}")
        if target_uri.partition(":")[0].lower() not in ("tel", "sip", "sips"):
            raise ValueError(f"target_uri must be a tel:, sip: or sips: URI, got {target_uri!r}")
        await self._post(call_id, "refer", {"target_uri": target_uri})

    async def attach(
        self, call_id: str, agent: Agent, config: RunConfig | None = None, **kwargs: Any
    ) -> Session:
        """:func:`attach` with this client's key, on the Realtime endpoint next to ``base_url``."""
        kwargs.setdefault("url", self._ws_url)
        return await attach(call_id, agent, config, api_key=self._key, **kwargs)


# ---- the webhook route
# ----------------------------------------------------------------------------------------------

OnCall = Callable[[IncomingCall], Awaitable[None] | None]


@dataclass(eq=False)
class SipWebhookHandler:
    """OpenAI's webhook deliveries, handled: mount :meth:`handle` (an aiohttp handler) at e.g.
    ``POST /openai/sip``; keep the object to :meth:`drain` its calls on shutdown.

    A verified ``realtime.call.incoming`` is answered ``200`` at once and ``on_call(call)`` runs in its own
    task (accepting and then talking for minutes must not hold the delivery, which OpenAI would retry); a
    redelivery of a ``webhook-id`` already handled is answered ``200`` and not handled again. Other verified
    events get ``200`` and are ignored; an unverifiable one gets ``400`` with a generic body. A failing
    ``on_call`` is logged (``fastvoice`` logger); reject the call yourself if it should not keep ringing.
    """

    secret: str = field(repr=False)
    on_call: OnCall
    tolerance: int = DEFAULT_TOLERANCE
    remember: int = 1024
    """How many recent ``webhook-id`` values are kept to drop redeliveries."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, init=False, repr=False)

    def __post_init__(self) -> None:
        _secret_key(self.secret)  # a malformed secret fails at setup, not on the first call

    async def handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = await request.read()
        try:
            event = verify_webhook(body, request.headers, self.secret, tolerance=self.tolerance)
        except WebhookVerificationError as exc:
            logger.warning("fastvoice sip: refused a webhook delivery: %s", exc)
            return web.json_response({"error": "webhook verification failed"}, status=400)
        if event.webhook_id in self._seen:
            return web.Response(status=200)
        self._seen[event.webhook_id] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        if isinstance(event, IncomingCall):
            self._start(event)
        return web.Response(status=200)

    def _start(self, call: IncomingCall) -> None:
        async def run() -> None:
            try:
                result = self.on_call(call)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("fastvoice sip: on_call failed for call %s", call.call_id)

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the running ``on_call`` tasks (at most ``timeout`` s), then cancel what is left."""
        pending = set(self.tasks)
        if pending:
            _, left = await asyncio.wait(pending, timeout=timeout)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)


def make_sip_handler(
    secret: str, on_call: OnCall, *, tolerance: int = DEFAULT_TOLERANCE
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of OpenAI's SIP webhooks (:meth:`SipWebhookHandler.handle`; its ``__self__`` is the
    :class:`SipWebhookHandler`): ``app.router.add_post("/openai/sip", make_sip_handler(secret, on_call))``."""
    return SipWebhookHandler(secret, on_call, tolerance).handle
