"""Handoffs: a triage agent transfers the conversation to a specialist (``transfer_to_<name>`` tools).

    python examples/realtime_handoffs.py [--out reply.wav] [--offline | --url URL | --openai | --fake]

On a handoff the session sends the specialist's instructions and tools (voice and audio formats unchanged),
answers the handoff call and asks the new agent to respond. Where the session goes (an explicit flag wins;
without one, a found API key means OpenAI):

- no API key, or ``--offline``: an in-process ``fastvoice.serve.RealtimeServer`` whose "model" is
  :class:`SwitchboardBrain` below: as Triage it calls ``transfer_to_billing``, as Billing it speaks
  (eSpeak NG);
- ``--url ws://127.0.0.1:8765/v1/realtime``: a server you started with
  ``PYTHONPATH=examples fastvoice serve --workflow realtime_handoffs:SwitchboardBrain``;
- ``--openai``, or a key found: OpenAI;
- ``--fake``: the protocol test double ``FakeRealtimeServer`` hands off and answers with a tone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib

import numpy as np
from _backend import add_backend_flags, choose_backend
from fastvoice import audio, realtime
from fastvoice.realtime import events as ev
from fastvoice.serve import BrainReply, FunctionCall, TurnContext

QUESTION = "I was charged twice for my order. I need billing."


@realtime.function_tool
def refund(order_id: str) -> str:
    """Refund an order.

    Args:
        order_id: The order to refund.
    """
    return f"Refund for {order_id} issued."


billing = realtime.agent("Billing", "You handle billing questions and refunds. Be brief.", tools=[refund])
tech = realtime.agent("Tech Support", "You fix technical problems. Be brief.")
triage = realtime.add_handoff(
    realtime.add_handoff(
        realtime.agent("Triage", "Route the caller to the right team."), billing, "Payments"
    ),
    tech,
    "Technical issues",
)


class SwitchboardBrain:
    """The offline "model". It knows which agent it is playing from what the session sent: the handoff
    tools (``transfer_to_*``) while Triage is active, the Billing instructions after the handoff."""

    async def respond(self, turn: TurnContext) -> BrainReply:
        if "transfer_to_billing" in turn.tool_names and "billing" in turn.last_user_text().lower():
            return BrainReply(calls=[FunctionCall("transfer_to_billing")])
        if "billing" in turn.instructions.lower():
            return BrainReply("Billing here. I will refund the double charge. Have a wonderful day.")
        return BrainReply("Let me find the right team for you.")


def tone(ms: int) -> list[bytes]:
    t = np.arange(24 * ms) / 24000
    pcm = (np.sin(2 * np.pi * 520 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(out: pathlib.Path, backend: str, url: str | None = None) -> None:
    async with contextlib.AsyncExitStack() as stack:
        api_key = None
        server = None
        if backend == "offline":
            from fastvoice.serve import RealtimeServer

            offline = await stack.enter_async_context(RealtimeServer(workflow=SwitchboardBrain, warm=False))
            url, api_key = offline.url, "offline"
        elif backend == "url":
            api_key = "offline"
        elif backend == "fake":
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_response_create(
                ScriptedResponse(audio=tone(400), transcript="Billing here, how can I help?")
            )
            url, api_key = server.url, "sk-local-fake-server"
        else:
            url = None
        print(f"backend: {backend}" + (f" at {url}" if url else ""))
        session = await realtime.start_session(triage, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)
        print("tools:", [t["name"] for t in triage.session_tools()])
        if server is not None:
            await server.call_tool("transfer_to_billing")
        else:
            await session.send_message(QUESTION)

        reply = bytearray()
        async for event in session:
            match event:
                case ev.RealtimeHandoffEvent(from_agent=a, to_agent=b):
                    print(f"handoff: {a.name} -> {b.name}")
                case ev.RealtimeAudioEvent(audio=pcm):
                    reply += pcm
                case ev.RealtimeErrorEvent(error=error):
                    print(f"error: {error}")
                case ev.RealtimeTranscriptEvent(role="assistant", text=text, is_final=True):
                    print(f"{session.agent.name}: {text}")
                    if session.agent is billing:
                        break
    out.write_bytes(audio.wav_encode(bytes(reply), 24000))
    print(f"wrote {len(reply) / 48:.0f} ms of reply audio to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("realtime_handoffs_reply.wav"))
    add_backend_flags(parser)
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, choose_backend(args), args.url), 120))
