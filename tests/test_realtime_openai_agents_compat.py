"""Cross-check with the official SDK: openai-agents-python's RealtimeSession against FakeRealtimeServer.

Two independent implementations have to agree here: every frame openai-agents sends must pass our strict GA
validator, our builders must produce the same first session.update it sends, and its session must understand
every event our scripted server sends (audio, transcripts, tool calls, handoffs). openai-agents is not a
fastvoice dependency (it pins other websockets/openai versions), so this runs where it is installed, e.g. in a
separate venv: `pip install openai-agents aiohttp numpy pytest pytest-asyncio` and
`PYTHONPATH=python python -m pytest tests/test_realtime_openai_agents_compat.py`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

agents_realtime = pytest.importorskip(
    "agents.realtime", reason="openai-agents is not installed (cross-check runs in a venv that has it)"
)
agents = pytest.importorskip("agents", reason="openai-agents is not installed")

from fastvoice import realtime as rt  # noqa: E402
from fastvoice.testing import FakeRealtimeServer, ScriptedResponse  # noqa: E402

MODEL = "gpt-realtime-2.1"


def pcm(ms: int) -> bytes:
    t = np.arange(24 * ms) / 24000
    return (np.sin(2 * np.pi * 330 * t) * 9000).astype("<i2").tobytes()


async def next_of(events: asyncio.Queue[Any], kind: str, timeout: float = 5.0) -> list[Any]:
    """Events up to and including the first of type ``kind``."""
    seen = []
    while True:
        event = await asyncio.wait_for(events.get(), timeout)
        seen.append(event)
        if event.type == kind:
            return seen


async def test_openai_agents_session_against_fake_server() -> None:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get weather for a city."""
        return f"Sunny in {city}"

    billing = agents_realtime.RealtimeAgent(name="Billing", instructions="You handle billing.")
    assistant = agents_realtime.RealtimeAgent(
        name="Assistant", instructions="You are helpful.", tools=[get_weather], handoffs=[billing]
    )
    runner = agents_realtime.RealtimeRunner(assistant, config={"model_settings": {"model_name": MODEL}})
    reply = [pcm(20), pcm(20), pcm(20)]

    async with FakeRealtimeServer() as server:
        server.on_response_create([ScriptedResponse(audio=reply, transcript="Hi!")])
        session = await runner.run(
            model_config={"url": f"{server.url}?model={MODEL}", "api_key": "sk-test-x"}
        )
        queue: asyncio.Queue[Any] = asyncio.Queue()
        async with session:

            async def pump() -> None:
                async for event in session:
                    await queue.put(event)

            pumper = asyncio.create_task(pump())
            try:
                first = await server.wait_for("session.update")
                # The same agent built with fastvoice produces the same first frame.
                ours = rt.build_session_update(
                    rt.agent(
                        "Assistant",
                        "You are helpful.",
                        tools=[rt.function_tool(name_override="get_weather")(_weather)],
                        handoffs=[rt.agent("Billing", "You handle billing.")],
                    ),
                    rt.RunConfig(model_settings=rt.SessionModelSettings(model=MODEL)),
                )
                assert first == ours

                await session.send_message("Hello")
                events = await next_of(queue, "agent_end")
                audio = b"".join(e.audio.data for e in events if e.type == "audio")
                assert audio == b"".join(reply)

                user = await server.wait_for("conversation.item.create")
                assert user["item"]["content"] == [{"type": "input_text", "text": "Hello"}]
                call_id = await server.call_tool("get_weather", {"city": "SF"})
                output = await server.wait_for("conversation.item.create")
                assert output["item"] == {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": "Sunny in SF",
                }
                await server.wait_for("response.create")

                await server.wait_idle()
                await server.call_tool("transfer_to_billing")
                handoff_out = await server.wait_for("conversation.item.create")
                updates = server.events("session.update")
                update = next(u for u in updates if u["session"].get("instructions") == "You handle billing.")
                assert json.loads(handoff_out["item"]["output"]) == {"assistant": "Billing"}
                assert update == rt.build_agent_update(
                    rt.agent("Billing", "You handle billing."),
                    rt.RunConfig(model_settings=rt.SessionModelSettings(model=MODEL)),
                )

                # Interruption: openai-agents truncates at what it estimates was played; our server rejects a
                # truncation past the audio it actually sent, so this also checks the estimate is sane.
                await server.wait_idle()
                server.on_response_create(ScriptedResponse(audio=[pcm(20)] * 200, delta_interval_s=0.005))
                await session.send_message("Tell me a story")
                await next_of(queue, "audio")
                await asyncio.sleep(0.1)
                await session.interrupt()
                truncate = await server.wait_for("conversation.item.truncate")
                assert 0 <= truncate["audio_end_ms"] <= 4000
                assert server.truncations == [truncate]
            finally:
                pumper.cancel()
                await asyncio.gather(pumper, return_exceptions=True)
        assert server.invalid_frames == [], [f.error for f in server.invalid_frames]
        assert not [e for e in server.sent if e["type"] == "error"]


def _weather(city: str) -> str:
    """Get weather for a city."""
    return f"Sunny in {city}"
