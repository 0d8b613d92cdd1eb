"""Phone calls through the bridge: a Twilio-protocol caller (tests/_twilio_caller.py, a real WebSocket)
talks to ``PhoneServer``, whose sessions go to the ``FakeRealtimeServer`` (every frame the session sends is
validated as a GA ``RealtimeClientEvent``, every frame it sends back as a ``RealtimeServerEvent``).

What is checked: μ-law passes through unchanged both ways to an ``audio/pcmu`` session; a PCM16 session
gets the call transcoded and resampled; barge-in sends ``clear`` and truncates at what the simulated phone
played; DTMF reaches the app (and the model as text); a handoff keeps ``audio/pcmu``; a stop or a dropped
socket ends the session with nothing left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from _twilio_caller import TwilioCaller, clip_ulaw
from fastvoice import audio, realtime, telephony
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

pytestmark = pytest.mark.asyncio


def agent(**kw: object) -> realtime.Agent:
    return realtime.Agent(name="phone", instructions="You answer the phone.", **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def phone_stack(
    a: realtime.Agent | None = None, **kw: object
) -> AsyncIterator[tuple[FakeRealtimeServer, telephony.PhoneServer, str]]:
    async with FakeRealtimeServer() as fake:
        server = telephony.PhoneServer(a or agent(), url=fake.url, api_key="sk-test", port=0, **kw)  # type: ignore[arg-type]
        async with server as phone:
            yield fake, phone, phone.base_url.replace("http://", "ws://") + "/twilio/media"
        assert fake.invalid_frames == [], fake.invalid_frames


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def the_call(phone: telephony.PhoneServer) -> telephony.Call:
    await until(lambda: bool(phone.calls))
    return next(iter(phone.calls))


def every_code(n_frames: int) -> bytes:
    """μ-law covering all 256 codes (both zeros, 0x7F and 0xFF, included), like a noisy line."""
    rng = np.random.default_rng(7)
    return bytes(rng.integers(0, 256, n_frames * 160, dtype=np.uint8))


async def test_ulaw_passes_straight_through_an_audio_pcmu_session_both_ways() -> None:
    async with phone_stack() as (fake, _phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        sent = every_code(40)
        await caller.speak(sent)
        await until(lambda: len(fake.input_audio) >= len(sent))
        assert fake.input_audio == sent  # codes unchanged, no transcoding
        fmt = fake.session["audio"]
        assert fmt["input"]["format"]["type"] == fmt["output"]["format"]["type"] == "audio/pcmu"
        reply = [every_code(5)[::-1] for _ in range(6)]  # 6 deltas of 100 ms
        await fake.respond(ScriptedResponse(audio=reply, transcript="hello"))
        await until(lambda: len(caller.rx.audio) >= 4800)
        assert caller.rx.audio == b"".join(reply)
        assert all(len(p) <= 160 for _, p in caller.rx.media)  # 20 ms frames
        assert caller.rx.errors == []


async def test_a_pcm16_session_gets_the_call_transcoded_and_resampled_natively() -> None:
    async with phone_stack(session_format="pcm16") as (fake, _phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        assert fake.session["audio"]["input"]["format"]["type"] == "audio/pcm"
        speech = clip_ulaw("voice_sample_24k.wav")
        await caller.speak(speech)
        await until(lambda: len(fake.input_audio) >= len(speech) * 6 * 0.95)
        heard = np.frombuffer(fake.input_audio, dtype=np.int16).astype(np.float64)
        ref = np.frombuffer(
            bytes(
                audio.to_pcm16(
                    audio.resample(audio.from_pcm16(bytes(audio.ulaw_decode(speech))), 8000, 24000)
                )
            ),
            dtype=np.int16,
        ).astype(np.float64)
        n = min(len(heard), len(ref))
        lag = int(np.argmax(np.correlate(heard[: n // 2], ref[: n // 2 - 200], "valid")))
        corr = np.corrcoef(heard[lag : lag + n - 400], ref[: n - 400])[0, 1]
        assert corr > 0.98, corr  # the caller's speech, at 24 kHz
        t = np.arange(24000) / 24000
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()
        await fake.respond(ScriptedResponse(audio=[tone[i : i + 4800] for i in range(0, len(tone), 4800)]))
        await until(lambda: len(caller.rx.audio) >= 7800)
        got = np.frombuffer(bytes(audio.ulaw_decode(caller.rx.audio)), dtype=np.int16).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(got[400:7600]))
        assert abs(np.argmax(spectrum) * 8000 / 7200 - 440) < 5  # the tone, now at 8 kHz μ-law
        assert 7800 <= len(caller.rx.audio) <= 8100


async def test_barge_in_clears_the_line_and_truncates_at_what_the_caller_heard() -> None:
    async with phone_stack() as (fake, _phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        await caller.speak(b"\xff" * 800)
        reply = [bytes([0x10 + i % 64]) * 800 for i in range(60)]  # 6 s, sent at once like OpenAI does
        task = asyncio.create_task(fake.respond(ScriptedResponse(audio=reply, transcript="a long answer")))
        await until(lambda: len(caller.played) >= 8000, timeout=5)  # about a second heard
        await fake.speech_started(audio_start_ms=1000)
        played_at_barge_in = len(caller.played)
        trunc = await fake.wait_for("conversation.item.truncate")
        await task
        await until(lambda: bool(caller.rx.clears))
        heard_ms = played_at_barge_in / 8
        # Marks every 100 ms, interpolated at real time: within a frame or two of the truth.
        assert abs(trunc["audio_end_ms"] - heard_ms) <= 60, (trunc["audio_end_ms"], heard_ms)
        late = [t for t, _ in caller.rx.media if t > caller.rx.clears[0]]
        assert late == []  # nothing of the cut reply after the clear
        assert len(caller.rx.audio) < 6 * 8000 // 2  # most of the 6 s never went out


async def test_a_second_interruption_truncates_at_its_own_position() -> None:
    """Regression: samples cleared by a first cut used to be counted against the next reply."""
    async with phone_stack() as (fake, _phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        for round_ in range(2):
            base = len(caller.played)
            reply = [bytes([0x20 + round_]) * 800 for _ in range(40)]
            task = asyncio.create_task(fake.respond(ScriptedResponse(audio=reply, transcript="x")))
            await until(lambda b=base: len(caller.played) - b >= 6400, timeout=5)  # 0.8 s of this reply
            played = len(caller.played) - base
            await fake.speech_started()
            await task
            await until(lambda r=round_: len(fake.truncations) > r)
            got = fake.truncations[round_]["audio_end_ms"]
            assert abs(got - played / 8) <= 60, (round_, got, played / 8)
            await asyncio.sleep(0.1)


async def test_dtmf_digits_reach_the_app_and_optionally_the_model() -> None:
    seen: list[object] = []

    async def on_call(call: telephony.Call) -> None:
        async for event in call.events():
            if isinstance(event, telephony.CallDtmf | telephony.CallStop):
                seen.append(event)

    async with (
        phone_stack(on_call=on_call, dtmf_as_text=True) as (fake, _phone, url),
        TwilioCaller(url) as caller,
    ):
        await fake.wait_for("session.update")
        await caller.dtmf("5")
        await caller.dtmf("#")
        item = await fake.wait_for("conversation.item.create")
        assert "keypad: 5#" in json.dumps(item["item"]["content"])  # one message for the digits, sent at #
        await caller.dtmf("7")  # no '#': sent after the pause
        item = await fake.wait_for("conversation.item.create", timeout=4)
        assert "keypad: 7" in json.dumps(item["item"]["content"])
        await until(lambda: len(seen) >= 3)
        assert seen[:3] == [telephony.CallDtmf(d) for d in "5#7"]
        await caller.stop()
        await until(lambda: telephony.CallStop("stop") in seen)


async def test_a_handoff_keeps_the_call_in_audio_pcmu() -> None:
    billing = realtime.Agent(name="billing", instructions="You handle billing.")
    front = agent(handoffs=[billing])
    async with phone_stack(front) as (fake, _phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        n = len(fake.events("session.update"))
        await fake.call_tool("transfer_to_billing", {})
        await until(lambda: len(fake.events("session.update")) > n)
        update = fake.events("session.update")[-1]["session"]
        assert "billing" in update["instructions"]
        assert update["audio"]["input"]["format"]["type"] == "audio/pcmu"
        assert update["audio"]["output"]["format"]["type"] == "audio/pcmu"
        await caller.speak(every_code(5))
        reply = [every_code(2)]
        await fake.respond(ScriptedResponse(audio=reply, transcript="billing here"))
        await until(lambda: len(caller.rx.audio) >= 320)
        assert caller.rx.audio == reply[0]  # still μ-law straight through, no noise down the line


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


@pytest.mark.parametrize("how", ["stop", "drop"])
async def test_a_hang_up_mid_reply_ends_the_session_and_leaves_nothing_running(how: str) -> None:
    async with phone_stack() as (fake, phone, url):
        before = {t for t in asyncio.all_tasks()}
        async with TwilioCaller(url) as caller:
            await fake.wait_for("session.update")
            call = await the_call(phone)
            task = asyncio.create_task(
                fake.respond(ScriptedResponse(audio=[b"\x33" * 800] * 50, realtime=True))
            )
            await until(lambda: len(caller.rx.media) > 10)
            await (caller.stop() if how == "stop" else caller.drop())
            await fake.wait_for_disconnect(timeout=5)
            await asyncio.wait_for(call.wait(), 5)
            await asyncio.gather(task, return_exceptions=True)
        assert phone.calls == set()
        assert call.session.closed
        assert call.end_reason == ("caller hung up" if how == "stop" else "caller gone")
        await asyncio.sleep(0.2)
        left = {t for t in asyncio.all_tasks() if t not in before and not t.done()}
        assert {t.get_name() for t in left} <= {asyncio.current_task().get_name()}  # type: ignore[union-attr]
        cpu0 = _cpu()
        await asyncio.sleep(1.0)
        assert _cpu() - cpu0 < 0.2  # no spin after the disconnect (pipecat #2955)


async def test_the_session_ending_hangs_up_the_caller() -> None:
    async with phone_stack() as (fake, phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        call = await the_call(phone)
        await fake.close(1000, "done")
        await asyncio.wait_for(caller.closed.wait(), 5)
        await asyncio.wait_for(call.wait(), 5)
        assert call.end_reason == "session ended" and phone.calls == set()


async def test_hangup_from_the_app_closes_the_line() -> None:
    async with phone_stack() as (fake, phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        call = await the_call(phone)
        await call.hangup()
        await asyncio.wait_for(caller.closed.wait(), 5)
        await fake.wait_for_disconnect(timeout=5)
        assert call.ended and call.end_reason == "hung up" and phone.calls == set()


def _mutants(seed: int, n: int) -> list[str]:
    """Valid Twilio frames cut, flipped, retyped and escaped at random: what a broken peer might send."""
    import base64
    import random

    rng = random.Random(seed)
    good = [
        json.dumps(
            {
                "event": "media",
                "streamSid": "MZ1",
                "media": {"payload": base64.b64encode(b"\x7f" * 160).decode()},
            }
        ),
        json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": "fv0.1"}}),
        json.dumps({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "1"}}),
    ]
    out = []
    for _ in range(n):
        s = list(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(5)
            i = rng.randrange(len(s))
            if op == 0:
                s = s[:i]  # truncated
            elif op == 1 and s:
                s[i] = chr(rng.randrange(32, 0x2FF))  # a flipped character
            elif op == 2:
                s.insert(i, rng.choice(['"', "\\", "{", "}", ":", ",", "\\u0000", "null", "1e999"]))
            elif op == 3:
                s = s + list(rng.choice([' "payload":"@@@@"', '"payload": 5', "\\/" * 3]))
            if not s:
                s = ["{"]
        out.append("".join(s))
    out.append('{"event":"media","media":{"payload":"' + "A" * 300_000 + '"}}')  # big, but under the limit
    return out


async def test_garbage_from_the_provider_never_breaks_the_call() -> None:
    async with phone_stack() as (fake, phone, url), TwilioCaller(url) as caller:
        await fake.wait_for("session.update")
        call = await the_call(phone)
        assert caller._ws is not None
        for frame in _mutants(12, 1500):
            await caller._ws.send(frame)
        marker = every_code(3)
        before = len(fake.input_audio)
        await caller.speak(marker)  # the line still works, and nothing garbage passed as audio
        await until(lambda: fake.input_audio.endswith(marker))
        assert not call.ended
        assert len(fake.input_audio) - before <= len(marker) + 160 * 1500
        stats = call.caller.stats  # type: ignore[attr-defined]
        assert stats[4] > 0  # undecodable payloads were counted (and left to Python, which logged them)


async def test_audio_sent_with_the_start_reaches_the_session_in_order() -> None:
    """Frames that arrive while the call is being set up (read by Python, or queued unread when the
    native stream takes over) come before the ones the stream reads itself."""
    import base64

    async with phone_stack() as (fake, _phone, url):
        caller = TwilioCaller(url, play=False)
        async with caller:  # sends connected + start
            assert caller._ws is not None
            sent = b"".join(bytes([i]) * 160 for i in range(200))
            for i in range(0, len(sent), 160):  # a burst, no pacing: most land before the attach
                payload = base64.b64encode(sent[i : i + 160]).decode()
                msg = {"event": "media", "streamSid": caller.stream_sid, "media": {"payload": payload}}
                await caller._ws.send(json.dumps(msg))
            await until(lambda: len(fake.input_audio) >= len(sent))
            assert fake.input_audio == sent


class _RawPcmDialect:
    """A caller that is not a phone: raw PCM16 binary frames at 48 kHz, JSON marks and clears (the seam the
    browser front end uses)."""

    name = "raw"

    def parse(self, text: str) -> telephony.CallEvent | None:
        msg = json.loads(text)
        if msg.get("event") == "start":
            return telephony.CallStart("raw", "s1", "c1", "audio/pcm", int(msg["sample_rate"]))
        if msg.get("event") == "stop":
            return telephony.CallStop("stop")
        return None

    def framing(self, start: telephony.CallStart) -> telephony.Framing:
        return telephony.Framing(
            media_prefix="",
            media_suffix="",
            mark_prefix='{"event":"mark","name":"',
            mark_suffix='"}',
            clear='{"event":"clear"}',
            ack_event="played",
            binary=True,
        )


async def test_the_seam_carries_a_binary_pcm_caller_resampled_both_ways() -> None:
    from aiohttp import web
    from fastvoice.telephony._socket import take_over

    def tone(hz: float, rate: int, seconds: float) -> bytes:
        t = np.arange(int(rate * seconds)) / rate
        return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()

    def peak_hz(pcm: bytes, rate: int) -> float:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x))

    calls: list[telephony.Call] = []

    async with FakeRealtimeServer() as fake:

        async def media(request: web.Request) -> web.StreamResponse:
            caller = telephony.MediaStreamCaller(await take_over(request), _RawPcmDialect())
            await caller.wait_start()
            call = await telephony.bridge_call(
                caller, agent(), url=fake.url, api_key="sk-test", session_format="pcm16"
            )
            calls.append(call)
            await call.wait()
            return web.Response()

        app = web.Application()
        app.router.add_get("/raw", media)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        import websockets

        async with websockets.connect(f"ws://127.0.0.1:{port}/raw") as ws:
            await ws.send(json.dumps({"event": "start", "sample_rate": 48000}))
            sent = tone(440, 48000, 1.0)
            for i in range(0, len(sent), 1920):  # 20 ms binary frames: one message per 20 ms of audio
                await ws.send(sent[i : i + 1920])
            await until(lambda: len(fake.input_audio) >= 48000 * 0.95)
            assert abs(peak_hz(fake.input_audio[4800:-4800], 24000) - 440) < 3  # at the session's 24 kHz
            await fake.respond(ScriptedResponse(audio=[tone(660, 24000, 0.5)], transcript="x"))
            got, marks = b"", []
            while len(got) < 48000 * 2 * 0.45:
                msg = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(msg, bytes):
                    got += msg
                else:
                    marks.append(json.loads(msg)["name"])
            assert abs(peak_hz(got[9600:], 48000) - 660) < 5  # back at the caller's 48 kHz
            assert all(len(c) for c in marks)
            for name in marks:
                await ws.send(json.dumps({"event": "played", "name": name}))
            await until(lambda: calls[0].caller.stats[2] >= len(marks))  # type: ignore[attr-defined]
            await ws.send(json.dumps({"event": "stop"}))
            await asyncio.wait_for(calls[0].wait(), 5)
        await runner.cleanup()
