"""OpenAI SIP calls: webhook signatures (against the Standard Webhooks example and the openai package's own
verifier), the calls API against FakeSipServer (a real aiohttp peer validating every body with the openai
param types), and a call end to end: webhook -> verify -> accept -> attach -> a tool call runs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pathlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import ClientSession, web
from fastvoice import realtime as rt
from fastvoice import transport
from fastvoice.realtime.session import _session_url
from fastvoice.telephony import sip
from fastvoice.telephony.sip import IncomingCall, SipCallError, SipCalls, WebhookVerificationError
from fastvoice.testing.sip_server import FakeCall, FakeSipServer, validate_call_request
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent

KEY = "sk-test-sip-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(b"fastvoice-sip-test-secret-32byte").decode()
NOW = 1_750_287_078


def call_event(call_id: str = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce", **data: Any) -> dict[str, Any]:
    return {
        "object": "event",
        "id": "evt_685343a1381c819085d44c354e1b330e",
        "type": "realtime.call.incoming",
        "created_at": NOW,
        "data": {
            "call_id": call_id,
            "sip_headers": [
                {"name": "Max-Forwards", "value": "63"},
                {"name": "From", "value": "sip:+142555512112@sip.example.com"},
                {"name": "To", "value": "sip:+18005551212@sip.example.com"},
                {"name": "X-Tag", "value": "a"},
                {"name": "x-tag", "value": "b"},
            ],
            **data,
        },
    }


def signed(
    event: Any, secret: str = SECRET, ts: int = NOW, wid: str = "wh_1"
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode() if not isinstance(event, bytes) else event
    return body, sip.sign_webhook(body, secret, webhook_id=wid, timestamp=ts)


def openai_accepts(body: bytes, headers: dict[str, str], secret: str, now: int) -> bool:
    """The openai package's verdict on the same delivery (its clock pinned to `now`)."""
    client = openai.OpenAI(api_key="unused", webhook_secret=secret)
    real_time = time.time
    time.time = lambda: float(now)  # its verifier reads time.time(); pinned for this call only
    try:
        client.webhooks.verify_signature(body, headers, secret=secret)
        return True
    except ValueError:  # InvalidWebhookSignatureError, or a missing header
        return False
    finally:
        time.time = real_time


# ---- signatures
# -------------------------------------------------------------------------------------------------


def test_the_standard_webhooks_example_signature() -> None:
    # The example of the Standard Webhooks specification (its reference libraries' test vector).
    headers = sip.sign_webhook(
        '{"test": 2432232314}',
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    sip.verify_signature(
        '{"test": 2432232314}', headers, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=1614265330
    )


def test_a_good_signature_parses_the_call_and_matches_openai_types() -> None:
    event = call_event(sip_media_security="srtp")
    body, headers = signed(event)
    call = sip.verify_webhook(body, headers, SECRET, now=NOW + 10)
    assert isinstance(call, IncomingCall)
    parsed = RealtimeCallIncomingWebhookEvent.model_validate_json(body)
    assert call.call_id == parsed.data.call_id == "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
    assert call.sip_headers == tuple((h.name, h.value) for h in parsed.data.sip_headers)
    assert (call.event_id, call.created_at, call.webhook_id) == (parsed.id, parsed.created_at, "wh_1")
    assert call.sip_media_security == "srtp"
    assert call.header("from") == "sip:+142555512112@sip.example.com"
    assert call.header("X-TAG") == "a" and call.header("Contact") is None  # the first of repeats
    assert openai_accepts(body, headers, SECRET, NOW + 10)
    with pytest.raises(AttributeError):
        call.call_id = "other"  # type: ignore[misc]


def test_headers_are_case_insensitive_as_aiohttp_gives_them() -> None:
    body, headers = signed(call_event())
    upper = {k.title(): v for k, v in headers.items()}
    assert isinstance(sip.verify_webhook(body, upper, SECRET, now=NOW), IncomingCall)


def test_bad_signatures_are_refused_like_openai_does() -> None:
    body, headers = signed(call_event())
    cases = {
        "wrong secret": (body, headers, "whsec_" + base64.b64encode(b"another").decode()),
        "tampered body": (body.replace(b"+1425", b"+1426"), headers, SECRET),
        "tampered id": (body, {**headers, "webhook-id": "wh_2"}, SECRET),
        "tampered timestamp": (body, {**headers, "webhook-timestamp": str(NOW + 1)}, SECRET),
        "no v1 signature": (body, {**headers, "webhook-signature": "v1,AAAA v2,BBBB"}, SECRET),
    }
    for name, (b, h, s) in cases.items():
        with pytest.raises(WebhookVerificationError, match="no webhook-signature matches") as info:
            sip.verify_webhook(b, h, s, now=NOW)
        assert SECRET not in str(info.value) and SECRET[6:] not in str(info.value), name
        assert not openai_accepts(b, h, s, NOW), name


def test_missing_headers_and_bad_timestamps() -> None:
    body, headers = signed(call_event())
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        without = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(WebhookVerificationError, match=f"missing {name} header"):
            sip.verify_webhook(body, without, SECRET, now=NOW)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        sip.verify_webhook(body, {**headers, "webhook-timestamp": "yesterday"}, SECRET, now=NOW)


def test_the_replay_window_is_300_seconds_either_way() -> None:
    body, headers = signed(call_event())
    for now, ok in ((NOW + 300, True), (NOW + 301, False), (NOW - 300, True), (NOW - 301, False)):
        assert openai_accepts(body, headers, SECRET, now) is ok
        if ok:
            sip.verify_webhook(body, headers, SECRET, now=now)
            continue
        word = "old" if now > NOW else "in the future"
        with pytest.raises(WebhookVerificationError, match=word):
            sip.verify_webhook(body, headers, SECRET, now=now)
    sip.verify_webhook(body, headers, SECRET, now=NOW + 3000, tolerance=3600)
    # The default clock: a delivery signed now passes, one signed an hour ago does not.
    fresh_body, fresh = signed(call_event(), ts=int(time.time()))
    sip.verify_webhook(fresh_body, fresh, SECRET)
    stale_body, stale = signed(call_event(), ts=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="old"):
        sip.verify_webhook(stale_body, stale, SECRET)


def test_several_signatures_one_matching_and_secret_forms() -> None:
    body, headers = signed(call_event())
    good = headers["webhook-signature"]
    rotated = {**headers, "webhook-signature": f"v1,bm90IGl0 {good} v1a,whatever"}
    assert isinstance(sip.verify_webhook(body, rotated, SECRET, now=NOW), IncomingCall)
    assert openai_accepts(body, rotated, SECRET, NOW)
    # Without the whsec_ prefix the secret is its own UTF-8 bytes (the openai package's rule).
    raw_body, raw_headers = signed(call_event(), secret="plain-secret")
    sip.verify_webhook(raw_body, raw_headers, "plain-secret", now=NOW)
    assert openai_accepts(raw_body, raw_headers, "plain-secret", NOW)
    with pytest.raises(WebhookVerificationError):  # the prefixed form decodes differently
        sip.verify_webhook(
            raw_body, raw_headers, "whsec_" + base64.b64encode(b"plain-secret").decode() + "x", now=NOW
        )
    with pytest.raises(WebhookVerificationError, match="not valid base64") as info:
        sip.verify_webhook(body, headers, "whsec_abcde", now=NOW)
    assert "abcde" not in str(info.value)


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=200),
    sig=st.sampled_from(["good", "garbage", "several"]),
    skew=st.integers(-400, 400),
    secret=st.sampled_from([SECRET, "plain-secret"]),
)
def test_verdicts_agree_with_the_openai_package(body: bytes, sig: str, skew: int, secret: str) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(WebhookVerificationError, match="UTF-8"):
            sip.verify_signature(body, signed(b"{}", secret)[1], secret, now=NOW)
        return
    _, headers = signed(body, secret)
    if sig == "garbage":
        headers["webhook-signature"] = "v1," + base64.b64encode(body[:32].ljust(32, b"x")).decode()
    elif sig == "several":
        headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    try:
        sip.verify_signature(body, headers, secret, now=NOW + skew)
        ours = True
    except WebhookVerificationError:
        ours = False
    assert ours is openai_accepts(body, headers, secret, NOW + skew)


def test_a_verified_but_malformed_event_names_the_field() -> None:
    bad = {
        "data.call_id": call_event(call_id=""),
        "data.sip_headers[1]": {
            **call_event(),
            "data": {"call_id": "c", "sip_headers": [{"name": "a", "value": "b"}, {"name": 1}]},
        },
        "created_at": {**call_event(), "created_at": "now"},
        "data.sip_media_security": call_event(sip_media_security=5),
    }
    for where, event in bad.items():
        body, headers = signed(event)
        with pytest.raises(WebhookVerificationError, match=where.replace("[", r"\[").replace("]", r"\]")):
            sip.verify_webhook(body, headers, SECRET, now=NOW)
    body, headers = signed(b"[1, 2]")
    with pytest.raises(WebhookVerificationError, match="JSON object"):
        sip.verify_webhook(body, headers, SECRET, now=NOW)
    other = {"id": "evt_1", "type": "response.completed", "created_at": NOW, "data": {"id": "resp_1"}}
    event = sip.verify_webhook(*signed(other), SECRET, now=NOW)
    assert event == sip.WebhookEvent("response.completed", "evt_1", NOW, {"id": "resp_1"}, "wh_1")


# ---- the calls API
# ------------------------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeSipServer]:
    async with FakeSipServer(api_key=KEY) as server:
        yield server
        assert server.invalid_requests == []
        assert server.invalid_frames == [], [f.error for f in server.invalid_frames]


@rt.function_tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


BILLING = rt.agent("Billing", "You handle invoices.")
FRONT_DESK = rt.agent("Front desk", "You answer the phone for Acme.", tools=[get_weather], handoffs=[BILLING])
PHONE = rt.RunConfig(
    model_settings=rt.SessionModelSettings(
        voice="marin", input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"
    )
)


async def test_accept_sends_the_agent_session_config(fake: FakeSipServer) -> None:
    fake.calls["rtc_1"] = FakeCall("rtc_1", ())  # rings without a webhook
    async with SipCalls(KEY, base_url=fake.base_url) as calls:
        sent = await calls.accept("rtc_1", FRONT_DESK, PHONE)
    assert sent == rt.build_session_config(FRONT_DESK, PHONE)
    (req,) = fake.requests_for("accept")
    assert req.call_id == "rtc_1" and req.body == sent
    assert req.authorization is not None and KEY not in req.authorization
    body = req.body
    assert body["type"] == "realtime" and body["instructions"] == "You answer the phone for Acme."
    assert [t["name"] for t in body["tools"]] == ["get_weather", "transfer_to_billing"]
    assert body["audio"]["output"]["voice"] == "marin"
    assert body["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # The same session object a WebSocket session starts with.
    assert rt.build_session_update(FRONT_DESK, PHONE)["session"] == body
    assert fake.calls["rtc_1"].state == "accepted"


async def test_reject_hangup_and_refer(fake: FakeSipServer) -> None:
    for cid in ("rtc_r", "rtc_d", "rtc_h", "rtc_t"):
        fake.calls[cid] = FakeCall(cid, ())
    async with SipCalls(KEY, base_url=fake.base_url) as calls:
        await calls.reject("rtc_r", 486)
        await calls.reject("rtc_d")
        await calls.accept("rtc_h", FRONT_DESK)
        await calls.hangup("rtc_h")
        await calls.accept("rtc_t", FRONT_DESK)
        await calls.refer("rtc_t", "tel:+14155550123")
    assert (fake.calls["rtc_r"].state, fake.calls["rtc_r"].reject_status) == ("rejected", 486)
    assert [r.body for r in fake.requests_for("reject")] == [{"status_code": 486}, {"status_code": 603}]
    assert fake.calls["rtc_h"].state == "ended" and fake.requests_for("hangup")[0].body is None
    assert (fake.calls["rtc_t"].state, fake.calls["rtc_t"].refer_to) == ("referred", "tel:+14155550123")
    assert fake.requests_for("refer")[0].body == {"target_uri": "tel:+14155550123"}


async def test_api_errors_are_typed_and_never_hold_the_key(fake: FakeSipServer) -> None:
    async with SipCalls(KEY, base_url=fake.base_url) as calls:
        with pytest.raises(SipCallError) as info:
            await calls.accept("rtc_missing", FRONT_DESK)
        assert info.value.status == 404 and info.value.code == "call_id_not_found"
        assert "rtc_missing" in str(info.value) and "No session found" in str(info.value)
        fake.calls["rtc_2"] = FakeCall("rtc_2", ())
        with pytest.raises(SipCallError) as info:
            await calls.hangup("rtc_2")  # never accepted
        assert info.value.status == 400 and info.value.code == "invalid_call_state"
        for bad in (0, 200, 700, True):
            with pytest.raises(ValueError, match="status_code"):
                await calls.reject("rtc_2", bad)
        for uri in ("", "+14155550123", "http://x", "tel:"):
            with pytest.raises(ValueError, match="target_uri"):
                await calls.refer("rtc_2", uri)
        for cid in ("", "..", "."):
            with pytest.raises(ValueError, match="call_id"):
                await calls.hangup(cid)
    wrong = "sk-wrong-key-abcdefghijkl"
    async with SipCalls(wrong, base_url=fake.base_url) as calls:
        with pytest.raises(SipCallError) as info:
            await calls.reject("rtc_2")
    assert (
        info.value.status == 401 and "check the API key" in str(info.value) and wrong not in str(info.value)
    )
    assert wrong not in repr(SipCalls(wrong))
    async with SipCalls(KEY, base_url="http://127.0.0.1:9/v1", timeout=2.0) as calls:  # nothing listens
        with pytest.raises(SipCallError) as info:
            await calls.hangup("rtc_2")
    assert info.value.status == 0 and KEY not in str(info.value)


async def test_the_fake_refuses_bodies_the_openai_types_refuse(fake: FakeSipServer) -> None:
    fake.calls["rtc_v"] = FakeCall("rtc_v", ())
    base = f"{fake.base_url}/realtime/calls/rtc_v"
    auth = {"Authorization": f"Bearer {KEY}"}
    bad = [
        ("accept", {"instructions": "hi"}),  # no type
        ("accept", {"type": "realtime", "voise": "ash"}),
        ("accept", {"type": "realtime", "tools": [{"type": "function", "name": "f", "paramters": {}}]}),
        ("accept", {"type": "realtime", "audio": {"output": {"voice": 3}}}),
        ("refer", {}),
        ("reject", {"status_code": "busy"}),
        ("hangup", {"reason": "bye"}),
    ]
    async with ClientSession() as http:
        for verb, body in bad:
            async with http.post(f"{base}/{verb}", json=body, headers=auth) as resp:
                assert resp.status == 400, (verb, body)
                assert (await resp.json())["error"]["code"] == "invalid_request_body"
        async with http.post(f"{base}/accept", json={"type": "realtime"}) as resp:
            assert resp.status == 401
    assert len(fake.invalid_requests) == len(bad)
    assert fake.calls["rtc_v"].state == "ringing"
    fake.invalid_requests.clear()
    # The same checker passes what SipCalls sends.
    validate_call_request("accept", rt.build_session_config(FRONT_DESK, PHONE))
    validate_call_request("refer", {"target_uri": "sip:agent@example.com"})
    validate_call_request("hangup", None)


def test_a_call_socket_url_names_the_call_not_a_model() -> None:
    assert sip.call_url("rtc_1") == "wss://api.openai.com/v1/realtime?call_id=rtc_1"
    assert sip.call_url("a/b c", "ws://h/v1/realtime?x=1") == "ws://h/v1/realtime?x=1&call_id=a%2Fb%20c"
    assert (
        _session_url(sip.call_url("rtc_1"), "gpt-realtime")
        == "wss://api.openai.com/v1/realtime?call_id=rtc_1"
    )
    # Unchanged for ordinary sessions.
    assert _session_url(None, "m") == "wss://api.openai.com/v1/realtime?model=m"
    assert _session_url("ws://h/v1/realtime?model=x", "m") == "ws://h/v1/realtime?model=x"
    assert _session_url("ws://h/v1/realtime?xmodel=1", "m") == "ws://h/v1/realtime?xmodel=1&model=m"


async def test_attach_only_to_an_accepted_call(fake: FakeSipServer) -> None:
    fake.calls["rtc_w"] = FakeCall("rtc_w", ())
    with pytest.raises(transport.ConnectError) as info:
        await sip.attach("rtc_w", FRONT_DESK, api_key=KEY, url=fake.url, reconnect=False)
    assert info.value.status == 404


# ---- end to end
# ---------------------------------------------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/openai/sip"


async def test_a_call_end_to_end_runs_a_tool(fake: FakeSipServer, caplog: pytest.LogCaptureFixture) -> None:
    sessions: asyncio.Queue[rt.Session] = asyncio.Queue()
    seen: list[IncomingCall] = []
    calls = SipCalls(KEY, base_url=fake.base_url)

    async def on_call(call: IncomingCall) -> None:
        seen.append(call)
        if call.header("From") == "<sip:+15550666@spam.example>":
            await calls.reject(call.call_id, 486)
            return
        await calls.accept(call.call_id, FRONT_DESK, PHONE)
        await sessions.put(await calls.attach(call.call_id, FRONT_DESK, PHONE))

    handler = sip.SipWebhookHandler(fake.webhook_secret, on_call)
    app = web.Application()
    app.router.add_post("/openai/sip", handler.handle)
    runner, url = await serve(app)
    try:
        call = await fake.ring(
            url, sip_headers=[("From", "<sip:+15550100@trunk.example>"), ("X-Account", "42")]
        )
        assert call.webhook_statuses == [200]
        # What the fake sent is a delivery the openai package itself verifies and parses.
        client = openai.OpenAI(api_key="unused", webhook_secret=fake.webhook_secret)
        unwrapped = client.webhooks.unwrap(call.webhook_body, call.webhook_headers)
        assert isinstance(unwrapped, RealtimeCallIncomingWebhookEvent)
        assert unwrapped.data.call_id == call.call_id
        session = await asyncio.wait_for(sessions.get(), 5)
        assert seen[0].call_id == call.call_id and seen[0].header("x-account") == "42"
        conn = fake.connections[0]
        assert conn.query == {"call_id": call.call_id}  # no model in the URL
        assert conn.headers["Authorization"] != f"Bearer {KEY}"  # recorded redacted
        assert fake.calls[call.call_id].session == rt.build_session_config(FRONT_DESK, PHONE)
        # The session's own first frame re-sends the same config, and the fake keeps the accepted one.
        update = await fake.wait_for("session.update")
        assert update["session"] == fake.calls[call.call_id].session
        assert fake.session["audio"]["output"]["voice"] == "marin"

        # The "model" calls a tool: the session runs it and answers over the call's socket.
        call_id = await fake.call_tool("get_weather", {"city": "Paris"})
        out = await fake.wait_for("conversation.item.create")
        assert out["item"]["type"] == "function_call_output"
        assert (out["item"]["call_id"], out["item"]["output"]) == (call_id, "Sunny in Paris")
        await fake.wait_for("response.create")

        # A redelivery of the same webhook is acknowledged, not handled twice.
        assert await fake.redeliver(call, url) == 200
        await asyncio.sleep(0.05)
        assert len(seen) == 1 and len(fake.requests_for("accept")) == 1

        # A forged delivery is refused before on_call sees it.
        async with ClientSession() as http:
            headers = {**call.webhook_headers, "webhook-signature": "v1,Zm9yZ2Vk"}
            with caplog.at_level(logging.WARNING, logger="fastvoice"):
                async with http.post(url, data=call.webhook_body, headers=headers) as resp:
                    assert resp.status == 400
                    assert fake.webhook_secret not in await resp.text()
        assert "refused a webhook" in caplog.text and fake.webhook_secret not in caplog.text

        # A second caller is turned away by on_call.
        spam = await fake.ring(url, sip_headers=[("From", "<sip:+15550666@spam.example>")])
        await fake.wait_for_state(spam.call_id, "rejected")
        assert fake.calls[spam.call_id].reject_status == 486

        # Hanging up ends the attached session.
        await calls.hangup(call.call_id)
        await fake.wait_for_disconnect()
        for _ in range(100):
            if session.closed:
                break
            await asyncio.sleep(0.02)
        assert session.closed
        await handler.drain(timeout=5)
        assert not handler.tasks
    finally:
        await calls.aclose()
        await runner.cleanup()


async def test_a_failing_on_call_is_logged_and_the_delivery_still_acknowledged(
    fake: FakeSipServer, caplog: pytest.LogCaptureFixture
) -> None:
    def on_call(call: IncomingCall) -> None:
        raise RuntimeError("database down")

    app = web.Application()
    handle = sip.make_sip_handler(fake.webhook_secret, on_call)
    handler = handle.__self__  # type: ignore[attr-defined]
    assert isinstance(handler, sip.SipWebhookHandler)
    app.router.add_post("/openai/sip", handle)
    runner, url = await serve(app)
    try:
        with caplog.at_level(logging.ERROR, logger="fastvoice"):
            call = await fake.ring(url)
            await handler.drain(timeout=5)
        assert call.webhook_statuses == [200]
        assert f"on_call failed for call {call.call_id}" in caplog.text
        # A stale delivery (signed 10 minutes ago) is refused.
        stale = await fake.ring(url, timestamp=int(time.time()) - 600)
        assert stale.webhook_statuses == [400]
    finally:
        await runner.cleanup()
    with pytest.raises(WebhookVerificationError):
        sip.make_sip_handler("whsec_abcde", on_call)


def test_the_guide_sip_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    start = guide.index("\n### SIP calls")
    section = guide[start : guide.index("\n## ", start)]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(block, "guide SIP calls", "exec"), {"__name__": "guide"})
    out = capsys.readouterr().out
    promised = re.findall(r"^# (.+)$", block, re.M)
    assert promised == ["ringing: <sip:+15550100@trunk.example>", "tool answered: 9 to 5"]
    for line in promised:
        assert line in out
