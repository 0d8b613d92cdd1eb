"""A first Realtime voice session: ask a question, stream the spoken answer into a WAV file.

    python examples/realtime_basic.py [--out reply.wav] [--fake]

With an API key (``OPENAI_API_KEY``, ``CODEX_API_KEY`` or ``~/.codex/auth.json``) this talks to OpenAI;
without one, or with ``--fake``, to the local ``FakeRealtimeServer``, which answers with a tone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib

import numpy as np
from fastvoice import audio, realtime
from fastvoice.realtime import events as ev


def scripted_reply() -> list[bytes]:
    """Half a second of a 440 Hz tone in 20 ms chunks: what the fake "model" says."""
    t = np.arange(24000 // 2) / 24000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(out: pathlib.Path, fake: bool) -> None:
    agent = realtime.agent("Assistant", "You are a friendly voice assistant. Answer in one short sentence.")
    config = realtime.RunConfig(model_settings=realtime.SessionModelSettings(voice="marin"))
    async with contextlib.AsyncExitStack() as stack:
        url = api_key = None
        if fake:
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_response_create(ScriptedResponse(audio=scripted_reply(), transcript="Hello there!"))
            url, api_key = server.url, "sk-local-fake-server"
        session = await realtime.start_session(agent, config, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)

        await session.send_message("Say hello.")
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
    parser.add_argument("--fake", action="store_true", help="use the local fake server even if a key is set")
    args = parser.parse_args()
    # A real model may not do what the script expects: give up after two minutes rather than hang.
    asyncio.run(asyncio.wait_for(main(args.out, args.fake or realtime.resolve_api_key() is None), 120))
