"""Function tools in a Realtime session: the session runs ``@function_tool`` functions itself (each in its own
task), asks before running ``needs_approval`` tools, and hands dict tools to the application.

    python examples/realtime_tools.py [--out reply.wav] [--fake]

Without an API key (or with ``--fake``) the local ``FakeRealtimeServer`` plays the model and calls each tool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib

import numpy as np
from fastvoice import audio, realtime
from fastvoice.realtime import events as ev


@realtime.function_tool
async def get_weather(city: str) -> str:
    """Get the current weather.

    Args:
        city: The city to look up.
    """
    await asyncio.sleep(0.05)  # a slow lookup does not block the session
    return f"It is sunny and 21 degrees in {city}."


@realtime.function_tool(needs_approval=True)
def book_table(restaurant: str, people: int) -> str:
    """Book a restaurant table.

    Args:
        restaurant: Where.
        people: How many guests.
    """
    return f"Booked {restaurant} for {people}."


CLOCK = {
    "name": "get_time",
    "description": "The local time.",
    "parameters": {"type": "object", "properties": {}},
}


def tone(ms: int) -> list[bytes]:
    t = np.arange(24 * ms) / 24000
    pcm = (np.sin(2 * np.pi * 330 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(out: pathlib.Path, fake: bool) -> None:
    agent = realtime.agent(
        "Concierge", "Help with weather and bookings. Use the tools.", tools=[get_weather, book_table, CLOCK]
    )
    async with contextlib.AsyncExitStack() as stack:
        url = api_key = None
        server = None
        if fake:
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_response_create(ScriptedResponse(audio=tone(300), transcript="All done."))
            url, api_key = server.url, "sk-local-fake-server"
        session = await realtime.start_session(agent, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)

        if server is not None:

            async def model() -> None:  # the fake "model" calls the three tools in turn
                await server.call_tool("get_weather", {"city": "Lisbon"})
                await server.wait_for("response.create")
                await asyncio.sleep(0.05)  # let the fake model answer that request first
                await server.wait_idle()
                await server.call_tool("book_table", {"restaurant": "Chez Nous", "people": 2})
                await server.wait_for("response.create")
                await asyncio.sleep(0.05)  # let the fake model answer that request first
                await server.wait_idle()
                await server.call_tool("get_time", {})

            stack.enter_context(_background(model()))
        else:
            await session.send_message(
                "What's the weather in Lisbon? Then book Chez Nous for 2. What time is it?"
            )

        reply = bytearray()
        clock_answered = False
        async for event in session:
            match event:
                case ev.RealtimeToolStartEvent(name=name, args=args):
                    print(f"tool start: {name} {args}")
                case ev.RealtimeToolEndEvent(name=name, output=output):
                    print(f"tool end: {name} -> {output}")
                case ev.RealtimeToolApprovalRequiredEvent(name=name, call_id=call_id):
                    print(f"approval required: {name}; approving")
                    await session.approve_tool_call(call_id)
                case ev.RealtimeToolCallEvent(name="get_time", call_id=call_id):
                    print("client tool: get_time")
                    await session.send_tool_result(call_id, {"time": "12:00"})
                    clock_answered = True
                case ev.RealtimeAudioEvent(audio=pcm):
                    reply += pcm
                case ev.RealtimeTranscriptEvent(role="assistant", text=text, is_final=True):
                    print(f"assistant: {text}")
                    if clock_answered:
                        break
    out.write_bytes(audio.wav_encode(bytes(reply), 24000))
    print(f"wrote {len(reply) / 48:.0f} ms of reply audio to {out}")


@contextlib.contextmanager
def _background(coro: object) -> object:
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    try:
        yield task
    finally:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("realtime_tools_reply.wav"))
    parser.add_argument("--fake", action="store_true", help="use the local fake server even if a key is set")
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, args.fake or realtime.resolve_api_key() is None), 120))
