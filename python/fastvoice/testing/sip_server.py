"""A local stand-in for OpenAI's SIP calls: the webhook it sends, the calls API, and the call's WebSocket.

``FakeSipServer`` is a :class:`~fastvoice.testing.FakeRealtimeServer` (same scripting: ``call_tool``,
``wait_for``, ``respond``...) that also serves, on the same 127.0.0.1 port::

    POST /v1/realtime/calls/{call_id}/accept | reject | hangup | refer
    GET  /v1/realtime?call_id=...        (WebSocket; only once the call is accepted)

and plays OpenAI's side of a call: :meth:`FakeSipServer.ring` makes a call ring, sending a signed
``realtime.call.incoming`` delivery (Standard Webhooks headers, ``webhook_secret``) to a URL::

    async with FakeSipServer(api_key="sk-test-key-1234") as fake:
        call = await fake.ring(f"http://127.0.0.1:{port}/openai/sip", sip_headers=[("From", "<sip:+1555@x>")])
        await fake.wait_for_state(call.call_id, "accepted")
        await fake.wait_for_connection()
        await fake.call_tool("get_weather", {"city": "Paris"})

Every request body is checked against the ``openai`` package's param types (``CallAcceptParams``,
``CallRejectParams``, ``CallReferParams``; unknown fields rejected at any depth, as the accept body is also
checked as a GA ``session`` object); an invalid one gets a 400 and is kept in ``invalid_requests``. Every
request is recorded in ``requests`` (the key redacted). A wrong or missing Bearer key gets 401; an unknown
call 404 ``call_id_not_found`` (what the service answers); a call in the wrong state (accepting a call
twice, hanging up one that was never accepted) 400 ``invalid_call_state`` (this fake's choice). Hanging up
closes the call's WebSockets (code 1000). The webhook sent is checked against
``RealtimeCallIncomingWebhookEvent``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import itertools
import json
import secrets
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
from aiohttp import ClientSession, web

from fastvoice.realtime.auth import redact
from fastvoice.telephony.sip import sign_webhook
from fastvoice.testing._state import default_session, merge
from fastvoice.testing.realtime_server import FakeRealtimeServer
from fastvoice.testing.validation import EventValidationError, materialize, validate_client_event

__all__ = ["CallState", "FakeCall", "FakeSipServer", "SipRequest", "validate_call_request"]

CallState = Literal["ringing", "accepted", "rejected", "ended", "referred"]
Verb = Literal["accept", "reject", "hangup", "refer"]


@dataclass(slots=True)
class FakeCall:
    """One call the fake made ring, and what the client did with it."""

    call_id: str
    sip_headers: tuple[tuple[str, str], ...]
    state: CallState = "ringing"
    session: dict[str, Any] | None = None
    """The accepted ``session`` config (the accept body)."""
    reject_status: int | None = None
    refer_to: str | None = None
    webhook_body: bytes = b""
    webhook_headers: dict[str, str] = field(default_factory=dict)
    webhook_statuses: list[int] = field(default_factory=list)
    """The HTTP status of each delivery of the webhook (a redelivery appends)."""


@dataclass(frozen=True, slots=True)
class SipRequest:
    """A calls API request: the ``verb``, the ``call_id`` of the path, the parsed JSON ``body`` (``None`` when
    empty) and the redacted ``Authorization`` header."""

    verb: str
    call_id: str
    body: dict[str, Any] | None
    authorization: str | None
    time: float = field(default_factory=time.monotonic)


@functools.cache
def _param_type(verb: str) -> tuple[pydantic.TypeAdapter[Any], frozenset[str], tuple[str, ...]]:
    from openai.types.realtime.call_accept_params import CallAcceptParams
    from openai.types.realtime.call_refer_params import CallReferParams
    from openai.types.realtime.call_reject_params import CallRejectParams

    param: Any = {"accept": CallAcceptParams, "reject": CallRejectParams, "refer": CallReferParams}[verb]
    required = {"accept": ("type",), "reject": (), "refer": ("target_uri",)}[verb]
    return pydantic.TypeAdapter(param), frozenset(typing.get_type_hints(param)), required


def validate_call_request(verb: str, body: Mapping[str, Any] | None) -> None:
    """Check a calls API body against the ``openai`` param type of ``verb``; raises ``ValueError`` naming
    the problem. ``hangup`` takes no body (``{}`` is tolerated)."""
    if verb == "hangup":
        if body:
            raise ValueError(f"hangup takes no body, got field(s) {sorted(body)}")
        return
    if body is None:
        if verb == "reject":  # every field is optional
            return
        raise ValueError(f"{verb} needs a JSON object body")
    adapter, keys, required = _param_type(verb)
    unknown = sorted(set(body) - keys)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}")
    missing = [k for k in required if k not in body]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    try:
        materialize(adapter.validate_python(dict(body)))
    except pydantic.ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        ) from None
    if verb == "accept":
        # pydantic ignores unknown keys inside TypedDicts; the strict GA session check catches them.
        try:
            validate_client_event({"type": "session.update", "session": dict(body)})
        except EventValidationError as exc:
            raise ValueError(f"as a GA session object: {exc.problem}") from None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}},
        status=status,
    )


class FakeSipServer(FakeRealtimeServer):
    """See the module docstring. ``webhook_secret`` defaults to a fresh ``whsec_...`` secret."""

    def __init__(
        self, *, api_key: str | None = None, webhook_secret: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[SipRequest] = []
        self.invalid_requests: list[tuple[SipRequest, str]] = []
        self._seq = itertools.count(1)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``base_url`` of :class:`~fastvoice.telephony.sip.SipCalls`."""
        return f"http://{self._host}:{self._port}/v1"

    def requests_for(self, verb: str) -> list[SipRequest]:
        return [r for r in self.requests if r.verb == verb]

    # ---- OpenAI's side of a call
    # -----------------------------------------------------------------------------------------

    def incoming_call_event(self, call: FakeCall, *, created_at: int | None = None) -> dict[str, Any]:
        """The ``realtime.call.incoming`` event of ``call`` (validated against the openai type)."""
        from openai.types.webhooks import RealtimeCallIncomingWebhookEvent

        event = {
            "id": f"evt_fake{next(self._seq):04d}",
            "object": "event",
            "created_at": int(time.time()) if created_at is None else created_at,
            "type": "realtime.call.incoming",
            "data": {
                "call_id": call.call_id,
                "sip_headers": [{"name": n, "value": v} for n, v in call.sip_headers],
            },
        }
        RealtimeCallIncomingWebhookEvent.model_validate(event)
        return event

    async def ring(
        self,
        webhook_url: str,
        *,
        sip_headers: Sequence[tuple[str, str]] = (
            ("From", "<sip:+15550100@trunk.example>;tag=1"),
            ("To", "<sip:+15550199@sip.api.openai.com>"),
        ),
        call_id: str | None = None,
        timestamp: int | None = None,
    ) -> FakeCall:
        """A new call rings: its webhook is signed with ``webhook_secret`` (at ``timestamp``, default now)
        and POSTed to ``webhook_url``. Returns the call; the delivery's status is in ``webhook_statuses``."""
        cid = call_id or f"rtc_fake{next(self._seq):04d}{secrets.token_hex(4)}"
        if cid in self.calls:
            raise ValueError(f"call {cid} already exists")
        call = FakeCall(cid, tuple(sip_headers))
        self.calls[cid] = call
        body = json.dumps(self.incoming_call_event(call)).encode()
        sent_at = int(time.time()) if timestamp is None else timestamp
        call.webhook_body = body
        call.webhook_headers = sign_webhook(
            body, self.webhook_secret, webhook_id=f"wh_fake{secrets.token_hex(8)}", timestamp=sent_at
        )
        await self.redeliver(call, webhook_url)
        return call

    async def redeliver(self, call: FakeCall, webhook_url: str) -> int:
        """Send ``call``'s webhook again, unchanged (as OpenAI retries a delivery); returns the status."""
        headers = {"content-type": "application/json", "user-agent": "OpenAI/1.0 (fastvoice fake)"}
        async with ClientSession() as http:
            async with http.post(
                webhook_url, data=call.webhook_body, headers=headers | call.webhook_headers
            ) as r:
                await r.read()
                call.webhook_statuses.append(r.status)
                return r.status

    async def wait_for_state(self, call_id: str, state: CallState, timeout: float = 5.0) -> FakeCall:
        """Wait until call ``call_id`` is in ``state``."""
        try:
            async with self._cond:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.calls[call_id].state == state), timeout
                )
        except TimeoutError:
            raise TimeoutError(
                f"call {call_id} is {self.calls[call_id].state}, not {state}, after {timeout} s"
            ) from None
        return self.calls[call_id]

    # ---- routes
    # ------------------------------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/realtime/calls/{call_id}/{verb}", self._call_request)

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :]:
            return False
        return self._api_key is None or auth == f"Bearer {self._api_key}"

    async def _call_request(self, request: web.Request) -> web.Response:
        verb, call_id = request.match_info["verb"], request.match_info["call_id"]
        raw = await request.read()
        auth = request.headers.get("Authorization")
        shown = "Bearer " + redact(auth.removeprefix("Bearer ")) if auth else None
        try:
            body = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
            problem: str | None = "the body is not JSON"
        else:
            problem = None if body is None or isinstance(body, dict) else "the body must be a JSON object"
        record = SipRequest(verb, call_id, body if isinstance(body, dict) else None, shown)
        self.requests.append(record)
        if not self._authorized(request):
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        if verb not in ("accept", "reject", "hangup", "refer"):
            return _error(404, "unknown_url", f"Unknown request URL: POST {request.path}")
        if problem is None:
            try:
                validate_call_request(verb, record.body)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            self.invalid_requests.append((record, problem))
            return _error(400, "invalid_request_body", f"Invalid {verb} request: {problem}")
        call = self.calls.get(call_id)
        if call is None:
            return _error(404, "call_id_not_found", "No session found for the provided call_id")
        allowed: dict[str, tuple[CallState, ...]] = {
            "accept": ("ringing",),
            "reject": ("ringing",),
            "hangup": ("accepted", "referred"),
            "refer": ("accepted",),
        }
        if call.state not in allowed[verb]:
            return _error(400, "invalid_call_state", f"Cannot {verb} a call that is {call.state}")
        body = record.body or {}
        if verb == "accept":
            call.state, call.session = "accepted", copy.deepcopy(body)
        elif verb == "reject":
            call.state, call.reject_status = "rejected", int(body.get("status_code", 603))
        elif verb == "refer":
            call.state, call.refer_to = "referred", body["target_uri"]
        else:
            call.state = "ended"
            for conn in list(self._conns):
                if conn.info.query.get("call_id") == call_id and not conn.ws.closed:
                    await self._cancel_active(conn, None, notify=False)
                    await conn.ws.close(code=1000, message=b"call ended")
        await self._notify()
        return web.Response(status=200)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call_id = request.query.get("call_id")
        if call_id is not None and self._authorized(request):
            call = self.calls.get(call_id)
            if call is None or call.state not in ("accepted", "referred"):
                return _error(404, "call_id_not_found", "No session found for the provided call_id")
        return await super()._handle(request)

    def _initial_session(self, request: web.Request) -> dict[str, Any]:
        call_id = request.query.get("call_id")
        if call_id is None:
            return super()._initial_session(request)
        accepted = self.calls[call_id].session or {}
        session = default_session(str(accepted.get("model", self._model)))
        merge(session, accepted)
        return session
