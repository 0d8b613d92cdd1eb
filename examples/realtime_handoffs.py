"""Handoffs: a triage agent transfers the conversation to a specialist (``transfer_to_<name>`` tools).

    python examples/realtime_handoffs.py [--out reply.wav] [--fake]

On a handoff the session sends the specialist's instructions and tools (voice and audio formats unchanged),
answers the handoff call and asks the new agent to respond. Without an API key (or with ``--fake``) the local
``FakeRealtimeServer`` plays a model that hands off to Billing.
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


def tone(ms: int) -> list[bytes]:
    t = np.arange(24 * ms) / 24000
    pcm = (np.sin(2 * np.pi * 520 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(out: pathlib.Path, fake: bool) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = api_key = None
        server = None
        if fake:
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_response_create(
                ScriptedResponse(audio=tone(400), transcript="Billing here, how can I help?")
            )
            url, api_key = server.url, "sk-local-fake-server"
        session = await realtime.start_session(triage, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)
        print("tools:", [t["name"] for t in triage.session_tools()])
        if server is not None:
            await server.call_tool("transfer_to_billing")
        else:
            await session.send_message("I was charged twice for my order. I need billing.")

        reply = bytearray()
        async for event in session:
            match event:
                case ev.RealtimeHandoffEvent(from_agent=a, to_agent=b):
                    print(f"handoff: {a.name} -> {b.name}")
                case ev.RealtimeAudioEvent(audio=pcm):
                    reply += pcm
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
    parser.add_argument("--fake", action="store_true", help="use the local fake server even if a key is set")
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, args.fake or realtime.resolve_api_key() is None), 120))
