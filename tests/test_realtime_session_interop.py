"""fastvoice next to openai-agents-python (the official SDK) on the same scripted server.

The baseline to match or beat is what openai-agents sends; here both face the same barge-in: a response that
streams 4 s of audio four times faster than real time, interrupted 300 ms after its first delta. A listener
playing in real time has heard ~300 ms, and that is what the truncation should say (not the ~1200 ms
received by then).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse
from test_realtime_session import KEY, Collector, pcm

agents_realtime = pytest.importorskip("agents.realtime", reason="openai-agents is not installed (test extra)")

STORY = ScriptedResponse(audio=[pcm(20)] * 200, delta_interval_s=0.005)
HEARD_MS = 300


async def fastvoice_truncation() -> tuple[int, float]:
    async with FakeRealtimeServer() as server:
        server.on_response_create(STORY)
        session = await rt.start_session(rt.agent("A", "x"), api_key=KEY, url=server.url)
        got = Collector()
        session.subscribe(got)
        await session.send_message("story")
        await got.wait(ev.RealtimeAudioEvent)
        t0 = got.times[got.events.index(got.of(ev.RealtimeAudioEvent)[0])]
        await asyncio.sleep(HEARD_MS / 1000)
        heard = (time.monotonic() - t0) * 1000
        await session.interrupt()
        truncate = await server.wait_for("conversation.item.truncate")
        await session.stop()
        assert server.invalid_frames == []
        return truncate["audio_end_ms"], heard


async def openai_agents_truncation() -> tuple[int, float]:
    agent = agents_realtime.RealtimeAgent(name="A", instructions="x")
    runner = agents_realtime.RealtimeRunner(agent)
    async with FakeRealtimeServer() as server:
        server.on_response_create(STORY)
        session = await runner.run(model_config={"url": f"{server.url}?model=gpt-realtime", "api_key": KEY})
        async with session:
            queue: asyncio.Queue[Any] = asyncio.Queue()

            first_audio: list[float] = []

            async def pump() -> None:
                async for event in session:
                    if event.type == "audio" and not first_audio:
                        first_audio.append(time.monotonic())
                    await queue.put((time.monotonic(), event))

            task = asyncio.create_task(pump())
            await session.send_message("story")
            while (await asyncio.wait_for(queue.get(), 5))[1].type != "audio":
                pass
            t0 = first_audio[0]
            await asyncio.sleep(HEARD_MS / 1000)
            heard = (time.monotonic() - t0) * 1000
            await session.interrupt()
            truncate = await server.wait_for("conversation.item.truncate")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert server.invalid_frames == []
        return truncate["audio_end_ms"], heard


async def test_truncation_matches_what_was_heard_like_openai_agents() -> None:
    # Both estimate by wall clock from the first delta (openai-agents' default tracker does too); with a
    # RingBuffer or reported playback fastvoice is exact instead (test_realtime_session_audio.py).
    ours, heard_ours = await fastvoice_truncation()
    theirs, heard_theirs = await openai_agents_truncation()
    print(f"heard ~{heard_ours:.0f} ms: fastvoice truncates at {ours} ms; openai-agents at {theirs} ms")
    assert abs(ours - heard_ours) <= 10
    assert abs(ours - heard_ours) <= abs(theirs - heard_theirs) + 10
