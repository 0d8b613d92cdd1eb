"""A live voice conversation: microphone in, speaker out, barge-in with exact truncation.

    python examples/live_realtime_voice.py [--wav-in question.wav] [--out reply.wav] [--no-device]
                                           [--offline | --url URL | --openai | --fake]

With ``sounddevice`` installed and a microphone present, you talk and the assistant answers through the
speaker; talking over it interrupts it, and the session truncates the assistant item at exactly what the
speaker played (the playback ``RingBuffer`` registered with the session counts it). Otherwise the question
comes from a WAV file (default: fastvoice's bundled sample, any rate, resampled natively) and the reply is
written to a WAV file; server VAD ends the turn.

Where the session goes (an explicit flag wins; without one, a found API key means OpenAI):

- no API key, or ``--offline``: an in-process ``fastvoice.serve.RealtimeServer``: server VAD, PocketSphinx,
  the default echo brain ("You said: ...") and eSpeak NG;
- ``--url ws://127.0.0.1:8765/v1/realtime``: a server you started with ``fastvoice serve``;
- ``--openai``, or a key found: OpenAI;
- ``--fake``: the protocol test double ``FakeRealtimeServer``, which answers a committed turn with a tone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import pathlib
from typing import Any

import numpy as np
from _backend import add_backend_flags, choose_backend
from fastvoice import audio, realtime
from fastvoice.realtime import events as ev

RATE = 24000


def open_devices(ring: audio.RingBuffer, mic: audio.RingBuffer) -> Any:
    """Speaker and microphone streams through sounddevice, or None when it (or a device) is missing.

    Both callbacks only touch ring buffers; the transport moves the audio between them and the
    WebSocket natively, so no audio chunk goes through the asyncio loop."""
    try:
        import sounddevice as sd  # type: ignore[import-not-found]

        def play(outdata: np.ndarray[Any, Any], frames: int, t: Any, status: Any) -> None:
            ring.read_into(outdata[:, 0], pad=True)  # what the speaker takes is what `consumed` counts

        def record(indata: np.ndarray[Any, Any], frames: int, t: Any, status: Any) -> None:
            mic.write(indata[:, 0])

        out = sd.OutputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=480, callback=play)
        inp = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", blocksize=480, callback=record)
        out.start()
        inp.start()
        return out, inp
    except Exception as exc:  # no sounddevice, no PortAudio, or no device
        print(f"no audio devices ({type(exc).__name__}); using WAV files")
        return None


def reply_tone() -> list[bytes]:
    t = np.arange(RATE) / RATE
    pcm = (np.sin(2 * np.pi * 392 * t) * 8000).astype("<i2").tobytes()
    return [pcm[i : i + 960] for i in range(0, len(pcm), 960)]


async def main(
    wav_in: pathlib.Path | None, out: pathlib.Path, backend: str, use_device: bool, url: str | None = None
) -> None:
    agent = realtime.agent("Assistant", "You are a friendly voice assistant. Keep answers short.")
    td = realtime.TurnDetectionConfig(type="server_vad", silence_duration_ms=500)
    config = realtime.RunConfig(
        model_settings=realtime.SessionModelSettings(voice="cedar", turn_detection=td)
    )
    ring = audio.RingBuffer(RATE * 30)
    mic = audio.RingBuffer(RATE * 2, dtype="float32")  # 2 s: the oldest goes first if we ever fall behind
    async with contextlib.AsyncExitStack() as stack:
        api_key = None
        fake = backend == "fake"
        if backend == "offline":
            from fastvoice.serve import RealtimeServer

            # One speaker: one recogniser (the default pool is one per core, loaded at start).
            offline = await stack.enter_async_context(RealtimeServer(stt_pool=1, stream_decoders=1))
            url, api_key = offline.url, "offline"
        elif backend == "url":
            api_key = "offline"
        elif fake:
            from fastvoice.testing import FakeRealtimeServer, ScriptedResponse

            server = await stack.enter_async_context(FakeRealtimeServer())
            server.on_commit(
                ScriptedResponse(audio=reply_tone(), transcript="Nice to hear you."), transcript="Hi!"
            )
            url, api_key = server.url, "sk-local-fake-server"
        else:
            url = None
        print(f"backend: {backend}" + (f" at {url}" if url else ""))
        session = await realtime.start_session(agent, config, api_key=api_key, url=url)
        stack.push_async_callback(session.stop)
        devices = open_devices(ring, mic) if use_device else None
        if devices is not None:
            session.playback.use_ring_buffer(ring, audio_events=False)  # deltas decoded into `ring` natively
            session.stream_audio_from(mic)  # the transport sends what the microphone wrote, every 20 ms
            for stream in devices:
                stack.callback(stream.close)
            print("listening; speak (Ctrl+C to quit)")
            async for event in session:
                if isinstance(event, ev.RealtimeTranscriptEvent) and event.is_final:
                    print(f"{event.role}: {event.text}")
                elif isinstance(event, ev.RealtimeAudioInterruptedEvent):
                    print(f"(interrupted at {event.audio_end_ms} ms)")
            return

        # WAV mode: send the question at its own rate in 20 ms chunks, then commit (fake) or let VAD end it.
        path = wav_in or pathlib.Path(str(importlib.resources.files("fastvoice") / "data" / "sample.wav"))
        wav = audio.wav_decode(path.read_bytes())
        samples = audio.from_pcm16(audio.to_mono(wav.pcm16, wav.channels), "float32")
        step = wav.sample_rate // 50
        for i in range(0, len(samples), step):
            await session.send_audio(samples[i : i + step], sample_rate=wav.sample_rate)
        silence = np.zeros(RATE // 50, dtype=np.float32)
        for _ in range(40):  # 0.8 s of silence so server VAD sees the end of the turn
            await session.send_audio(silence)
        if fake:
            await session.commit_audio()
        print(f"sent {wav.duration_s:.2f} s of {wav.sample_rate} Hz audio from {path.name}")
        reply = bytearray()
        async for event in session:
            match event:
                case ev.RealtimeTranscriptEvent(role=role, text=text, is_final=True):
                    print(f"{role}: {text}")
                case ev.RealtimeAudioEvent(audio=pcm):
                    reply += pcm
                case ev.RealtimeAgentEndEvent():
                    break
    out.write_bytes(audio.wav_encode(bytes(reply), RATE))
    print(f"wrote {len(reply) / 48:.0f} ms of reply audio to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wav-in", type=pathlib.Path, default=None)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("live_realtime_reply.wav"))
    parser.add_argument("--no-device", action="store_true", help="WAV in/out even if sounddevice works")
    add_backend_flags(parser)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.wav_in, args.out, choose_backend(args), not args.no_device, args.url))
