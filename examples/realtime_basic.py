"""A first Realtime voice session: ask a question, stream the spoken answer into a WAV file.

    python examples/realtime_basic.py [--out reply.wav] [--offline | --url URL | --openai | --fake]

Where the session goes (an explicit flag wins; without one, a found API key means OpenAI):

- no API key (``OPENAI_API_KEY``, ``CODEX_API_KEY`` or ``~/.codex/auth.json``), or ``--offline``: an
  in-process ``fastvoice.serve.RealtimeServer``: the default echo brain ("You said: ...") and eSpeak NG;
- ``--url ws://127.0.0.1:8765/v1/realtime``: a server you started with ``fastvoice serve``;
- ``--openai``, or a key found: OpenAI;
- ``--fake``: the protocol test double ``FakeRealtimeServer``, which answers with a tone.
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

QUESTION = "Please wish me a wonderful day."


def scripted_reply() -> list[bytes]:
    """Half a second of a 440 Hz tone in 20 ms chunks: what the fake "model" says."""
    t = np.arange(24000 // 2) / 24000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def endpoint(
    stack: contextlib.AsyncExitStack, backend: str, url: str | None
) -> tuple[str | None, str | None]:
    """``(url, api_key)`` for ``start_session``: None, None means OpenAI with the key found."""
    if backend == "offline":
        from fastvoice.serve import RealtimeServer

        # warm=False: this example types its question, so the speech recogniser is never needed.
        server = await stack.enter_async_context(RealtimeServer(warm=False))
        return server.url, "offline"
    if backend == "url":
        return url, "offline"
    if backend == "fake":
        from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

        fake = await stack.enter_async_context(FakeRealtimeServer())
        fake.on_response_create(ScriptedResponse(audio=scripted_reply(), transcript="Hello there!"))
        return fake.url, "sk-local-fake-server"
    return None, None


async def main(out: pathlib.Path, backend: str, url: str | None = None) -> None:
    agent = realtime.agent("Assistant", "You are a friendly voice assistant. Answer in one short sentence.")
    config = realtime.RunConfig(model_settings=realtime.SessionModelSettings(voice="marin"))
    async with contextlib.AsyncExitStack() as stack:
        url, api_key = await endpoint(stack, backend, url)
        print(f"backend: {backend}" + (f" at {url}" if url else ""))
        session = await realtime.start_session(agent, config, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)

        await session.send_message(QUESTION)
        reply = bytearray()
        async for event in session:
            match event:
                case ev.RealtimeAudioEvent(audio=pcm):
                    reply += pcm
                case ev.RealtimeTranscriptEvent(role="assistant", text=text, is_final=True):
                    print(f"assistant: {text}")
                case ev.RealtimeErrorEvent(error=error):
                    print(f"error: {error}")
                case ev.RealtimeAgentEndEvent():
                    break
    out.write_bytes(audio.wav_encode(bytes(reply), 24000))
    print(f"wrote {len(reply) / 48:.0f} ms of reply audio to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("realtime_basic_reply.wav"))
    add_backend_flags(parser)
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, choose_backend(args), args.url), 120))
