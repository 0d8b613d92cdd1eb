"""A voice agent with a function tool: a WAV question in, the spoken answer out as `agent_reply.wav`.

    python examples/voice_with_agent.py [IN.wav] [-o OUT.wav]

With an OpenAI key (CODEX_API_KEY, auth.json or OPENAI_API_KEY; OPENAI_BASE_URL is honoured)
the turn runs on OpenAI: transcription, an `AgentWorkflow` on the Responses API that may call
`get_weather`, and speech. Without a key it runs offline: the local providers, and a small
keyword workflow standing in for the LLM that calls the same tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from importlib import resources
from pathlib import Path

from fastvoice import audio, voice
from fastvoice.realtime import function_tool
from fastvoice.voice.providers import find_api_key


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: The city's name, e.g. Paris.
    """
    return f"sunny and 21 degrees in {city}"


def offline_workflow() -> voice.SimpleWorkflow:
    """No LLM offline: answer weather questions by calling the tool directly."""

    async def run(text: str) -> list[str]:
        if "weather" not in text.lower():
            return [f"You said: {text}."]
        city = next((c for c in ("London", "Tokyo", "Berlin") if c.lower() in text.lower()), "Paris")
        result = await get_weather.invoke_safe(json.dumps({"city": city}))
        return [f"It is {result.output}."]

    return voice.SimpleWorkflow(run)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("agent_reply.wav"))
    args = parser.parse_args()
    data = (
        args.input.read_bytes()
        if args.input
        else resources.files("fastvoice").joinpath("data/sample.wav").read_bytes()
    )

    if find_api_key() is not None:
        workflow: voice.Workflow = voice.AgentWorkflow(
            agent={"instructions": "You are a brief, friendly voice assistant.", "tools": [get_weather]},
            on_tool_call=lambda name, arguments, output: print(f"tool {name}({arguments}) -> {output!r}"),
        )
        provider = "openai"
    else:
        print("no API key found: running offline")
        workflow, provider = offline_workflow(), "local"

    pipeline = voice.Pipeline(workflow, provider=provider)
    t0 = time.perf_counter()
    result = await pipeline.run(voice.AudioInput(data))
    pcm = bytearray()
    async for event in result:
        if isinstance(event, voice.VoiceStreamEventAudio):
            pcm += event.data
        elif isinstance(event, voice.VoiceStreamEventLifecycle):
            print(f"{time.perf_counter() - t0:7.3f} s  {event.event}")
        elif isinstance(event, voice.VoiceStreamEventError):
            print(f"{time.perf_counter() - t0:7.3f} s  error: {event.error!r}")
    for turn in result.turns:
        print(f"heard: {turn.transcript!r}\nreply: {turn.reply!r}")
    for closeable in (workflow, pipeline.provider):
        aclose = getattr(closeable, "aclose", None)
        if aclose is not None:
            await aclose()
    args.output.write_bytes(audio.wav_encode(bytes(pcm), sample_rate=24000))
    print(f"wrote {args.output} ({len(pcm) / 48000:.2f} s at 24 kHz)")


if __name__ == "__main__":
    asyncio.run(main())
