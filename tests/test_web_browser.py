"""`fastvoice web` in a real browser: Debian's Chromium driven by Playwright, its fake microphone playing a
clip of tests/data into `getUserMedia`, the page talking to an agent on the offline `fastvoice serve`
(Whisper hears, the echo brain answers, Piper speaks). What a person would see is checked through the
page's `data-role` hooks, and a screenshot is saved."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from _data import data_path
from _speech import words
from fastvoice import audio, realtime

CHROMIUM = shutil.which("chromium")  # Debian's package (scripts/test installs it)
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (scripts/test installs it)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
pytest.importorskip("ctranslate2", reason="the [local] extra (ctranslate2) is not installed")


async def launch(p: object, mic: Path) -> object:
    """Debian's chromium with a fake microphone playing ``mic`` and the permission prompts answered."""
    return await p.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM,
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


def _clip48(name: str) -> np.ndarray:
    wav = audio.wav_decode(data_path(name).read_bytes())
    mono = audio.to_mono(audio.from_pcm16(bytes(wav.pcm16)), wav.channels)
    return np.frombuffer(bytes(audio.to_pcm16(audio.resample(mono, wav.sample_rate, 48000))), dtype=np.int16)


def mic_wav(path: Path, *, barge_in_after: float | None = None) -> Path:
    """What the fake microphone plays, at 48 kHz: 1 s of silence, the question, silence; with
    ``barge_in_after``, a second sentence that many seconds after the question, over the reply."""
    silence = lambda s: np.zeros(int(48000 * s), np.int16)  # noqa: E731
    parts = [silence(1), _clip48("weather_22k.wav")]
    if barge_in_after is not None:
        parts += [silence(barge_in_after), _clip48("voice_sample_24k.wav")]
    pcm = np.concatenate([*parts, silence(6)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return path


async def test_the_page_hears_the_user_and_plays_the_agents_reply(tmp_path: Path) -> None:
    from fastvoice.serve import RealtimeServer
    from fastvoice.web import WebServer

    wav = mic_wav(tmp_path / "mic.wav")
    async with RealtimeServer(engines="local", stt_pool=1, stream_decoders=1) as srv:
        agent = realtime.Agent(name="Web agent", instructions="Be brief.")
        async with (
            WebServer(agent, url=srv.url, api_key="sk-test", port=0) as web,
            playwright_api.async_playwright() as p,
        ):
            browser = await launch(p, wav)
            try:
                page = await browser.new_page()
                await page.goto(web.base_url)
                await page.click('[data-role="start"]')
                t_click = time.monotonic()
                agent_text = page.locator('[data-role="agent-transcript"]')
                for _ in range(300):
                    if "said" in (await agent_text.inner_text()).lower():
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)  # let the reply play
                frames_in = next(iter(web.calls)).caller.stats[0]  # type: ignore[attr-defined]
                live_s = time.monotonic() - t_click
                user = await page.locator('[data-role="user-transcript"]').inner_text()
                said = await agent_text.inner_text()
                played = int(await page.locator('[data-role="played-samples"]').inner_text())
                level = float(await page.locator('[data-role="played-level"]').inner_text())
                # FASTVOICE_SCREENSHOT=docs/web.png refreshes the README's picture.
                shot = Path(os.environ.get("FASTVOICE_SCREENSHOT") or tmp_path / "page.png")
                await page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
            finally:
                await browser.close()
    assert {"weather", "today"} <= set(words(user)), user
    assert "you said" in said.lower(), said
    assert played > 48000 * 0.5, played  # at least half a second of reply played in the page
    assert level > 0.005, level
    # The microphone path: one binary message per 20 ms of audio, no more (and it kept flowing).
    assert 0.7 * (live_s - 1.0) * 50 <= frames_in <= live_s * 50 + 5, (frames_in, live_s)


async def test_a_page_of_another_origin_cannot_open_the_agents_socket(tmp_path: Path) -> None:
    from aiohttp import web as aioweb
    from fastvoice.testing import FakeRealtimeServer
    from fastvoice.web import WebServer

    async with FakeRealtimeServer() as fake:
        agent = realtime.Agent(name="Web agent", instructions="x")
        async with WebServer(agent, url=fake.url, api_key="sk-test", port=0) as web:
            other = aioweb.Application()  # another site, on another port: another origin

            async def elsewhere(_request: aioweb.Request) -> aioweb.Response:
                return aioweb.Response(text="<p>elsewhere</p>", content_type="text/html")

            other.router.add_get("/", elsewhere)
            runner = aioweb.AppRunner(other)
            await runner.setup()
            await aioweb.TCPSite(runner, "127.0.0.1", 0).start()
            evil = f"http://127.0.0.1:{runner.addresses[0][1]}/"
            try:
                async with playwright_api.async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=CHROMIUM)
                    try:
                        page = await browser.new_page()
                        await page.goto(web.base_url)  # a real page load: a real token
                        token = await page.get_attribute('meta[name="fastvoice-token"]', "content")
                        await page.goto(evil)
                        ws_url = web.base_url.replace("http://", "ws://") + f"ws?token={token}"
                        outcome = await page.evaluate(
                            """(url) => new Promise((done) => {
                                const ws = new WebSocket(url);
                                ws.onopen = () => done("open");
                                ws.onerror = () => done("refused");
                            })""",
                            ws_url,
                        )
                    finally:
                        await browser.close()
            finally:
                await runner.cleanup()
        assert outcome == "refused"
        assert fake.connections == []  # no session was opened for it


async def test_speaking_over_the_agent_flushes_the_page_and_truncates_at_what_it_played(
    tmp_path: Path,
) -> None:
    from fastvoice.realtime import events as ev
    from fastvoice.serve import RealtimeServer
    from fastvoice.web import WebServer

    wav = mic_wav(tmp_path / "mic.wav", barge_in_after=1.4)
    cuts: list[int] = []
    async with RealtimeServer(engines="local", stt_pool=1, stream_decoders=1) as srv:
        agent = realtime.Agent(name="Web agent", instructions="Be brief.")
        async with (
            WebServer(agent, url=srv.url, api_key="sk-test", port=0) as web,
            playwright_api.async_playwright() as p,
        ):
            browser = await launch(p, wav)
            try:
                page = await browser.new_page()
                await page.goto(web.base_url)
                await page.click('[data-role="start"]')
                for _ in range(100):
                    if web.calls:
                        break
                    await asyncio.sleep(0.05)
                call = next(iter(web.calls))

                def on_event(event: object) -> None:
                    if isinstance(event, ev.RealtimeAudioInterruptedEvent):
                        cuts.append(event.audio_end_ms)

                call.session.subscribe(on_event)
                status = page.locator('[data-role="status"]')
                for _ in range(300):
                    if await status.get_attribute("data-played-at-clear"):
                        break
                    await asyncio.sleep(0.05)
                played_at_clear = int(await status.get_attribute("data-played-at-clear") or -1)
                await asyncio.sleep(0.3)
            finally:
                await browser.close()
    assert played_at_clear > 0, "the page never flushed its playback"
    assert cuts, "the session did not truncate the reply"
    heard_ms = played_at_clear / 48
    # The truncation is what the page acknowledged (marks every 100 ms, interpolated), not what was sent.
    assert abs(cuts[0] - heard_ms) <= 120, (cuts[0], heard_ms)


async def test_the_page_shows_partial_words_tool_calls_and_handoffs_as_they_happen(tmp_path: Path) -> None:
    from fastvoice.testing import FakeRealtimeServer
    from fastvoice.web import WebServer

    @realtime.function_tool
    def order_status(order: str) -> str:
        """Where an order is."""
        return f"order {order} has shipped"

    billing = realtime.Agent(name="Billing", instructions="Handle invoices.")
    shop = realtime.Agent(name="Shop", instructions="Help.", tools=[order_status], handoffs=[billing])
    silence = tmp_path / "silence.wav"
    silence.write_bytes(audio.wav_encode(bytes(48000 * 4), sample_rate=48000))
    async with (
        FakeRealtimeServer() as fake,
        WebServer(shop, url=fake.url, api_key="sk-test", port=0) as web,
        playwright_api.async_playwright() as p,
    ):
        browser = await launch(p, silence)
        try:
            page = await browser.new_page()
            await page.goto(web.base_url)
            await page.click('[data-role="start"]')
            await fake.wait_for("session.update")
            user = page.locator('[data-role="user-transcript"]')
            partial = page.locator('[data-role="user-transcript"] .partial')

            async def shown(locator: object, text: str) -> str:
                for _ in range(100):
                    now = await locator.inner_text()  # type: ignore[attr-defined]
                    if text in now:
                        return str(now)
                    await asyncio.sleep(0.05)
                raise AssertionError(f"{text!r} never appeared; the page shows {now!r}")

            base = {"item_id": "item_user1", "content_index": 0}
            for delta in ("Where is", " my order"):
                await fake.send(
                    {"type": "conversation.item.input_audio_transcription.delta", **base, "delta": delta}
                )
            # The partial words show as they are recognised, marked as partial.
            assert await shown(partial, "Where is my order") == "Where is my order"
            await fake.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    **base,
                    "transcript": "Where is my order 42?",
                    "usage": {"type": "duration", "seconds": 1.5},
                }
            )
            assert await shown(user, "Where is my order 42?") == "Where is my order 42?"
            assert await partial.count() == 0  # the final transcript replaced the partial one
            log = page.locator('[data-role="log"]')
            await fake.call_tool("order_status", {"order": "42"})
            lines = (await shown(log, "-> order 42 has shipped")).splitlines()
            assert lines == ['tool order_status({"order": "42"})', "order_status -> order 42 has shipped"], (
                lines
            )
            await fake.call_tool("transfer_to_billing", {})
            assert "handoff Shop -> Billing" in (await shown(log, "handoff")).splitlines()
        finally:
            await browser.close()
