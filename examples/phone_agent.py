"""A phone agent with a tool: callers type their order number on the keypad (or say it) and hear its status.

    python examples/phone_agent.py [--port 8080] [--offline | --url URL | --openai]
                                   [--simulate [--out reply.wav]]

It serves the phone routes (``POST /twilio/voice`` and the ``/twilio/media`` stream; Telnyx and Plivo
too): point a Twilio number's voice webhook at ``https://YOUR_HOST/twilio/voice`` (a TLS proxy or tunnel
in front, started with ``--public-url https://YOUR_HOST``). Where sessions go: ``--url`` a Realtime
server, ``--openai`` OpenAI, ``--offline`` (the default without a key) an in-process ``fastvoice serve``
whose "model" is :class:`OrderDesk` below.

``--simulate`` places one call itself, offline: a Twilio Media Streams client (real WebSocket, 20 ms
μ-law frames) hears the greeting, types ``4 2 #``; the agent calls ``order_status`` and speaks the
answer. What the caller heard is written to ``--out``, the agent's words printed. No phone, no key.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import wave

import websockets
from _backend import add_backend_flags, choose_backend
from fastvoice import audio, realtime, telephony
from fastvoice.realtime import events as ev
from fastvoice.serve import BrainReply, FunctionCall, TurnContext

ORDERS = {"42": "shipped yesterday and arrives on Friday", "7": "being packed"}


@realtime.function_tool
def order_status(order_number: str) -> str:
    """Look up where an order is.

    Args:
        order_number: The order number the caller gave.
    """
    status = ORDERS.get(order_number.strip("# "))
    return f"Order {order_number} is {status}." if status else f"I cannot find order {order_number}."


agent = realtime.agent(
    "Order desk",
    "You answer the phone for Acme. Ask for the order number (the caller may type it on the keypad, "
    "ending with #), look it up with order_status, and say the result in one sentence.",
    tools=[order_status],
)


class OrderDesk:
    """The offline "model": typed or spoken digits -> order_status -> the tool's answer, spoken."""

    async def respond(self, turn: TurnContext) -> BrainReply:
        said = turn.pending_tool_output()
        if said is not None:
            return BrainReply(said)
        digits = re.findall(r"\d+", turn.last_user_text())
        if digits:
            return BrainReply(calls=[FunctionCall("order_status", {"order_number": digits[-1]})])
        return BrainReply("Hello, this is Acme. Please type your order number, then the pound key.")


async def simulate_call(url: str, out: str) -> None:
    """Twilio's side of one call: start, keypad 4 2 #, then play whatever the agent says for a while."""
    sid = "MZ00000000000000000000000000000042"
    reply = bytearray()
    async with websockets.connect(url) as ws:
        start = {
            "streamSid": sid,
            "callSid": "CA00000000000000000000000000000042",
            "accountSid": "AC00000000000000000000000000000042",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "streamSid": sid, "start": start}))
        silence = base64.b64encode(b"\xff" * 160).decode()

        async def line() -> None:  # the caller's line: 20 ms of silence at a time, and three key presses
            for k in range(400):
                if k in (25, 35, 45):
                    digit = "42#"[(k - 25) // 10]
                    await ws.send(json.dumps({"event": "dtmf", "streamSid": sid, "dtmf": {"digit": digit}}))
                media = {"event": "media", "streamSid": sid, "media": {"payload": silence}}
                await ws.send(json.dumps(media))
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(line())
        replies = 0  # the greeting, then the answer: each ends with a second without audio
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                while replies < 2:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0 if reply else None)
                    except TimeoutError:
                        replies += 1
                        continue
                    msg = json.loads(raw)
                    if msg["event"] == "media":
                        reply += base64.b64decode(msg["media"]["payload"])
                    elif msg["event"] == "mark":  # a phone acknowledges marks as it plays them
                        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": msg["mark"]}))
        await asyncio.sleep(0.5)  # the answer's transcript arrives as its audio ends
        sender.cancel()
        await ws.send(json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": start["callSid"]}}))
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(audio.ulaw_decode(bytes(reply))))
    print(f"caller heard {len(reply) / 8000:.1f} s of the agent; written to {out}")


async def main(args: argparse.Namespace) -> None:
    backend = "offline" if args.simulate and not (args.url or args.openai) else choose_backend(args)
    async with contextlib.AsyncExitStack() as stack:
        url, api_key = args.url, None
        if backend == "offline":
            from fastvoice.serve import RealtimeServer

            srv = await stack.enter_async_context(RealtimeServer(workflow=OrderDesk, engines=args.engines))
            url, api_key = srv.url, "offline"
        elif backend == "url":
            api_key = "offline"

        async def on_call(call: telephony.Call) -> None:
            print(f"call {call.start.call_id} from {call.start.parameters.get('From', 'a simulated line')}")
            async for event in call.events():
                match event:
                    case telephony.CallDtmf(digit=digit):
                        print(f"  keypad: {digit}")
                    case ev.RealtimeToolStartEvent(name=name, args=tool_args):
                        print(f"  tool: {name} {tool_args}")
                    case ev.RealtimeTranscriptEvent(role="assistant", text=text, is_final=True):
                        print(f"  agent: {text}")

        phone = telephony.PhoneServer(
            agent,
            url=url,
            api_key=api_key,
            port=0 if args.simulate else args.port,
            public_url=args.public_url,
            dtmf_as_text=True,
            greet=True,
            on_call=on_call,
        )
        await stack.enter_async_context(phone)
        print(f"backend: {backend}; Twilio webhook: POST {phone.base_url}/twilio/voice")
        if args.simulate:
            await simulate_call(phone.base_url.replace("http://", "ws://") + "/twilio/media", args.out)
        else:
            await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--public-url", default=None, help="https://host the provider reaches (behind TLS)")
    p.add_argument("--simulate", action="store_true", help="place one simulated Twilio call and exit")
    p.add_argument("--out", default="phone_reply.wav", help="with --simulate: where the agent's speech goes")
    p.add_argument("--engines", choices=["local", "light"], default=None, help="offline engines")
    add_backend_flags(p)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(p.parse_args()))
