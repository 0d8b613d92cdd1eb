"""Function tools in a Realtime session: the session runs ``@function_tool`` functions itself (each in its own
task), asks before running ``needs_approval`` tools, and hands dict tools to the application.

    python examples/realtime_tools.py [--out reply.wav] [--offline | --url URL | --openai | --fake]

Where the session goes (an explicit flag wins; without one, a found API key means OpenAI):

- no API key, or ``--offline``: an in-process ``fastvoice.serve.RealtimeServer`` whose "model" is
  :class:`ConciergeBrain` below: it calls the three tools in turn and speaks each result (eSpeak NG);
- ``--url ws://127.0.0.1:8765/v1/realtime``: a server you started with
  ``PYTHONPATH=examples fastvoice serve --workflow realtime_tools:ConciergeBrain``;
- ``--openai``, or a key found: OpenAI;
- ``--fake``: the protocol test double ``FakeRealtimeServer`` plays the model, answering with tones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib

import numpy as np
from _backend import add_backend_flags, choose_backend
from fastvoice import audio, realtime
from fastvoice.realtime import events as ev
from fastvoice.serve import BrainReply, FunctionCall, TurnContext

QUESTION = "What's the weather in Lisbon? Then book Chez Nous for 2. What time is it?"


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


class ConciergeBrain:
    """The offline "model": one tool per response, each result spoken before the next call.

    Which tools already answered is read from the conversation (``function_call`` items and their
    ``function_call_output``), so the brain keeps no state of its own.
    """

    async def respond(self, turn: TurnContext) -> BrainReply:
        names = {i.get("call_id"): i.get("name") for i in turn.items if i.get("type") == "function_call"}
        answered = {
            names.get(i.get("call_id")) for i in turn.items if i.get("type") == "function_call_output"
        }
        said = turn.pending_tool_output() or ""
        if "get_weather" not in answered:
            return BrainReply(calls=[FunctionCall("get_weather", {"city": "Lisbon"})])
        if "book_table" not in answered:
            return BrainReply(said, [FunctionCall("book_table", {"restaurant": "Chez Nous", "people": 2})])
        if "get_time" not in answered:
            return BrainReply(said, [FunctionCall("get_time")])
        with contextlib.suppress(ValueError, AttributeError):
            said = f"It is {json.loads(said)['time']}."
        return BrainReply(f"{said} Have a wonderful day.")


def tone(ms: int) -> list[bytes]:
    t = np.arange(24 * ms) / 24000
    pcm = (np.sin(2 * np.pi * 330 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(out: pathlib.Path, backend: str, url: str | None = None) -> None:
    agent = realtime.agent(
        "Concierge", "Help with weather and bookings. Use the tools.", tools=[get_weather, book_table, CLOCK]
    )
    async with contextlib.AsyncExitStack() as stack:
        api_key = None
        server = None
        if backend == "offline":
            from fastvoice.serve import RealtimeServer

            offline = await stack.enter_async_context(RealtimeServer(workflow=ConciergeBrain, warm=False))
            url, api_key = offline.url, "offline"
        elif backend == "url":
            api_key = "offline"
        elif backend == "fake":
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_response_create(ScriptedResponse(audio=tone(300), transcript="All done."))
            url, api_key = server.url, "sk-local-fake-server"
        else:
            url = None
        print(f"backend: {backend}" + (f" at {url}" if url else ""))
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
            await session.send_message(QUESTION)

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
                case ev.RealtimeErrorEvent(error=error):
                    print(f"error: {error}")
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
    add_backend_flags(parser)
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, choose_backend(args), args.url), 120))
