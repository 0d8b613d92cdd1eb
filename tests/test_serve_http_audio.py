"""fastvoice serve's HTTP audio endpoints (``/v1/audio/transcriptions``, ``/v1/audio/speech``) driven by real
clients on 127.0.0.1: the official ``openai`` client, openai-agents' ``VoicePipeline`` and fastvoice's own
OpenAI provider, plus raw aiohttp requests for what clients do not send.

Every JSON body and SSE event is validated against the ``openai`` package's types with nothing left over
(``_http_audio.strict``). The installed ``openai`` has no model for the speech SSE events, so
``_http_audio.SpeechDelta`` and ``SpeechDone`` restate them from OpenAI's API reference
(``speech.audio.delta`` / ``speech.audio.done``), extra fields forbidden. Errors must be exactly
``{"error": {message, type, param, code}}``. Audio is checked with numpy (length, energy) and stdlib
``struct``; transcripts for the real words of the recordings (tests/data/README.md says what PocketSphinx
hears of them).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from _data import data_path
from _http_audio import (
    RATE,
    SpeechDelta,
    SpeechDone,
    check_error,
    client,
    pcm24k,
    post_form,
    recording,
    rms,
    serve,
    strict,
    wav_file,
)
from fastvoice import audio
from openai.types.audio import (
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
)

# ---- transcription


async def test_every_response_format_through_the_openai_client() -> None:
    async with serve() as server:
        c = client(server)
        raw = await c.audio.transcriptions.with_raw_response.create(
            file=data_path("weather_22k.wav"), model="gpt-4o-transcribe", language="en", prompt="Paris"
        )
        body = strict(Transcription, raw.http_response.json())
        assert "weather" in body.text.split(), body.text
        assert body.usage.type == "duration" and abs(body.usage.seconds - 1.99) < 0.01
        assert raw.parse().text == body.text

        raw = await c.audio.transcriptions.with_raw_response.create(
            file=data_path("two_turns_16k.wav"),
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
        verbose = strict(TranscriptionVerbose, raw.http_response.json())
        assert verbose.language == "english" and abs(verbose.duration - 5.36) < 0.01
        # Two stretches of speech 1.5 s apart: two segments, the pause between them.
        first, second = verbose.segments
        assert 0 <= first.start < first.end < 1.5 < 2.0 < second.start < second.end <= verbose.duration
        assert verbose.text == f"{first.text} {second.text}"
        assert [w.word for w in verbose.words] == verbose.text.split()
        starts = [w.start for w in verbose.words]
        assert starts == sorted(starts) and all(w.start < w.end for w in verbose.words)
        assert all(any(s.start <= w.start < w.end <= s.end for s in verbose.segments) for w in verbose.words)

        text = await c.audio.transcriptions.create(
            file=data_path("voice_sample_24k.wav"), model="whisper-1", response_format="text"
        )
        assert text == "have a wonderful day\n"
        srt = await c.audio.transcriptions.create(
            file=data_path("two_turns_16k.wav"), model="whisper-1", response_format="srt"
        )
        cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", srt)
        assert [c[0] for c in cues] == ["1", "2"] and cues[0][1] < cues[0][2] < cues[1][1] < cues[1][2], srt
        assert " ".join(c[3] for c in cues) == verbose.text
        vtt = await c.audio.transcriptions.create(
            file=data_path("two_turns_16k.wav"), model="whisper-1", response_format="vtt"
        )
        assert vtt.startswith("WEBVTT\n\n")
        assert re.findall(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n(.+)\n", vtt) == [
            c[3] for c in cues
        ]
        # verbose_json without granularities: segments only, as OpenAI answers.
        raw = await c.audio.transcriptions.with_raw_response.create(
            file=data_path("voice_sample_24k.wav"), model="whisper-1", response_format="verbose_json"
        )
        plain = strict(TranscriptionVerbose, raw.http_response.json())
        assert plain.words is None and [s.text for s in plain.segments] == ["have a wonderful day"]
        await c.close()


def two_pieces() -> bytes:
    """A sentence twice, 30 s apart: two pieces for the recogniser, heard one after the other."""
    said = pcm24k("voice_sample_24k.wav")
    return audio.wav_encode(said + bytes(2 * RATE * 30) + said, RATE)


async def test_streamed_transcription_sends_each_piece_before_the_end() -> None:
    async with serve() as server, aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        wav = two_pieces()
        form.add_field("file", io.BytesIO(wav), filename="t.wav")
        form.add_field("model", "gpt-4o-transcribe")
        form.add_field("stream", "true")
        events: list[tuple[float, dict[str, Any]]] = []
        async with http.post(server.base_url + "/audio/transcriptions", data=form) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            async for line in r.content:
                if line.startswith(b"data: "):
                    events.append((time.perf_counter(), json.loads(line[6:])))
        *deltas, (t_done, done) = events
        parsed = [strict(TranscriptionTextDeltaEvent, e) for _, e in deltas]
        final = strict(TranscriptionTextDoneEvent, done)
        assert len(parsed) == 2 and "".join(p.delta for p in parsed) == final.text
        assert [p.delta for p in parsed] == ["have a wonderful day", " have a wonderful day"]
        # The first piece went out while the second was being recognised.
        assert t_done - deltas[0][0] > 0.02, [t for t, _ in events]
        usage = final.usage
        seconds = (len(wav) - 44) / 2 / RATE
        assert usage is not None and usage.input_tokens == math.ceil(seconds * 10)  # 10 audio tokens a second
        # The official client reads the same stream as typed events.
        c = client(server)
        stream = await c.audio.transcriptions.create(
            file=data_path("voice_sample_24k.wav"), model="gpt-4o-transcribe", stream=True
        )
        got = [event async for event in stream]
        assert [e.type for e in got] == ["transcript.text.delta", "transcript.text.done"]
        assert got[-1].text == "have a wonderful day"
        await c.close()


def _samples() -> np.ndarray:
    return np.frombuffer(pcm24k("voice_sample_24k.wav"), "<i2").astype(np.float64) / 32768.0


@pytest.mark.parametrize(
    ("kind", "rate", "channels"),
    [
        ("u8", 16000, 1),
        ("s16", 44100, 2),
        ("s24", 48000, 1),
        ("s32", 32000, 1),
        ("f32", 22050, 2),
        ("f64", 16000, 1),
        ("ext-s16", 24000, 1),
        ("ext-f32", 48000, 6),
        ("s16", 8000, 1),
    ],
)
async def test_any_wav_rate_channels_and_sample_format(kind: str, rate: int, channels: int) -> None:
    x = audio.resample(_samples().astype(np.float32), RATE, rate).astype(np.float64)
    wav = wav_file(np.repeat(x, channels) * 0.9, rate, kind, channels)
    async with serve() as server, aiohttp.ClientSession() as http:
        status, body, _ = await post_form(
            http, server, wav, model="whisper-1", response_format="verbose_json"
        )
    assert status == 200, body
    parsed = strict(TranscriptionVerbose, body)
    assert abs(parsed.duration - len(x) / rate) < 0.002
    # Narrowband 8 kHz loses what PocketSphinx's wideband model listens for; the words survive all else.
    assert "wonderful" in parsed.text.split() if rate > 8000 else parsed.text, parsed.text


@pytest.mark.parametrize("how", [{"filename": "clip.pcm"}, {"filename": "clip", "content_type": "audio/pcm"}])
async def test_raw_pcm_uploads_are_pcm16_mono_24k(how: dict[str, str]) -> None:
    async with serve() as server:
        c = client(server)
        file = (
            how["filename"],
            pcm24k("voice_sample_24k.wav"),
            how.get("content_type", "application/octet-stream"),
        )
        raw = await c.audio.transcriptions.with_raw_response.create(file=file, model="whisper-1")
        assert strict(Transcription, raw.http_response.json()).text == "have a wonderful day"
        await c.close()


async def test_silence_is_an_empty_transcript_with_no_segments() -> None:
    async with serve() as server, aiohttp.ClientSession() as http:
        wav = audio.wav_encode(bytes(RATE * 4), RATE)
        status, body, _ = await post_form(http, server, wav, model="m", response_format="verbose_json")
        assert status == 200 and strict(TranscriptionVerbose, body).text == "" and body["segments"] == []
        status, _, srt = await post_form(http, server, wav, model="m", response_format="srt")
        assert status == 200 and srt == ""


async def test_a_large_upload_is_transcribed_without_stalling_the_server() -> None:
    # 11 minutes at 16 kHz (21 MB), one sentence in it: parsed, decoded and cut at pauses off the event loop.
    speech = np.frombuffer(audio.to_pcm16(audio.resample(_samples().astype(np.float32), RATE, 16000)), "<i2")
    pcm = np.zeros(16000 * 660, dtype="<i2")
    pcm[16000 * 300 : 16000 * 300 + len(speech)] = speech
    wav = audio.wav_encode(pcm.tobytes(), 16000)
    assert len(wav) > 21_000_000
    async with serve() as server, aiohttp.ClientSession() as http:
        gaps: list[float] = []

        async def probe() -> None:
            while True:
                t0 = time.perf_counter()
                async with http.get(server.base_url + "/models") as r:
                    assert r.status == 200
                gaps.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        t0 = time.perf_counter()
        status, body, _ = await post_form(http, server, wav, model="m", response_format="verbose_json")
        elapsed = time.perf_counter() - t0
        prober.cancel()
    assert status == 200, body
    verbose = strict(TranscriptionVerbose, body)
    assert verbose.text == "have a wonderful day" and verbose.duration == 660.0
    [segment] = verbose.segments
    assert 299.7 < segment.start < 300.2 and segment.end < 302.5
    print(f"21 MB upload: {elapsed:.2f} s, slowest /v1/models meanwhile {max(gaps) * 1000:.0f} ms")
    assert max(gaps) < 1.0


MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200)
ERRORS: list[tuple[dict[str, Any], str | None, str]] = [
    ({"file": None, "model": "m"}, "file", "'file'"),
    ({"model": None}, "model", "'model'"),
    ({"file": MP3}, "file", "MP3"),
    ({"file": b"\xff\xfb\x90\x64" + bytes(400), "filename": "a.bin"}, "file", "MP3"),
    ({"file": b"OggS" + bytes(300)}, "file", "Ogg"),
    ({"file": b"fLaC" + bytes(300)}, "file", "FLAC"),
    ({"file": b"\x1aE\xdf\xa3" + bytes(300), "filename": "a.webm"}, "file", "WebM"),
    ({"file": b"\x00\x00\x00\x20ftypM4A " + bytes(300), "filename": "a.m4a"}, "file", "M4A"),
    ({"file": bytes(range(256)) * 4, "filename": "voice.mp3"}, "file", "MP3"),
    ({"file": b"hello, not audio at all" * 20, "filename": "a.txt"}, "file", "WAV"),
    ({"file": b"RIFF\x10\x00\x00\x00WAVEfmt "}, "file", "WAV file could not be read"),
    ({"file": b""}, "file", "empty"),
    ({"file": bytes(4801), "filename": "a.pcm"}, "file", "odd number"),
    ({"file": bytes(960), "filename": "a.pcm"}, "file", "too short"),
    ({"response_format": "diarized_json"}, "response_format", "diarisation"),
    ({"response_format": "mp3"}, "response_format", "json, text"),
    ({"language": "fr"}, "language", "English"),
    ({"temperature": "2"}, "temperature", "0 to 1"),
    ({"temperature": "warm"}, "temperature", "0 to 1"),
    ({"stream": "maybe"}, "stream", "true or false"),
    ({"stream": "true", "response_format": "srt"}, "stream", "json or text"),
    ({"timestamp_granularities__": "word"}, "timestamp_granularities", "verbose_json"),
    (
        {"timestamp_granularities__": "token", "response_format": "verbose_json"},
        "timestamp_granularities",
        "token",
    ),
    ({"include__": "everything"}, "include", "logprobs"),
    ({"colour": "blue"}, "colour", "Unrecognized"),
    ({"model": ["a", "b"]}, "model", "more than once"),
]


@pytest.mark.parametrize(
    ("change", "param", "says"), ERRORS, ids=[f"{i}-{e[2]}" for i, e in enumerate(ERRORS)]
)
async def test_bad_transcription_requests_get_a_400_naming_the_problem(
    change: dict[str, Any], param: str | None, says: str
) -> None:
    fields: dict[str, Any] = {"file": recording("voice_sample_24k.wav"), "model": "whisper-1", **change}
    file = fields.pop("file")
    filename = fields.pop("filename", "a.wav")
    fields = {k: v for k, v in fields.items() if v is not None}
    async with serve(warm=False) as server, aiohttp.ClientSession() as http:
        status, body, _ = await post_form(http, server, file, filename, **fields)
    error = check_error(status, body, 400, param)
    assert says in error["message"], error
    if param == "file" and says not in (
        "'file'",
        "empty",
        "odd number",
        "too short",
        "WAV file could not be read",
    ):
        assert "WAV" in error["message"] and "PCM" in error["message"], error  # names what is read


async def test_wrong_body_kinds_key_route_and_size() -> None:
    async with serve(warm=False, api_key="sesame") as server, aiohttp.ClientSession() as http:
        url = server.base_url + "/audio/transcriptions"
        headers = {"Authorization": "Bearer sesame"}
        async with http.post(url, json={"model": "m"}, headers=headers) as r:
            check_error(r.status, await r.json(), 400)
        async with http.post(
            url, data=aiohttp.FormData({"model": "m"}), headers={"Authorization": "Bearer no"}
        ) as r:
            assert check_error(r.status, await r.json(), 401)["code"] == "invalid_api_key"
        async with http.post(server.base_url + "/audio/speech", json={}, headers={}) as r:
            assert r.status == 401
        async with http.post(server.base_url + "/audio/translations", headers=headers) as r:
            check_error(r.status, await r.json(), 404)
        async with http.get(url, headers=headers) as r:
            check_error(r.status, await r.json(), 405)
        speech = server.base_url + "/audio/speech"
        async with http.post(speech, data=b"{not json", headers=headers) as r:
            check_error(r.status, await r.json(), 400)
        async with http.post(
            speech, data=io.BytesIO(b"[" + b" " * (2 * 1024 * 1024) + b"]"), headers=headers
        ) as r:
            assert check_error(r.status, await r.json(), 413)["code"] == "request_too_large"
        big = aiohttp.FormData()
        big.add_field("model", "m")
        big.add_field("file", io.BytesIO(bytes(26 * 1024 * 1024)), filename="a.pcm")
        async with http.post(url, data=big, headers=headers) as r:
            assert check_error(r.status, await r.json(), 413)["code"] == "request_too_large"


# ---- speech


async def test_speech_streams_pcm_and_wav_as_it_is_synthesised() -> None:
    text = "The weather in Paris is sunny today, with a light breeze from the west. " * 40  # 2880 characters
    async with serve() as server:
        c = client(server)
        t0 = time.perf_counter()
        first_at = None
        pcm = bytearray()
        async with c.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="nova", input=text, response_format="pcm", instructions="Cheerful."
        ) as r:
            assert r.headers["content-type"] == "audio/pcm" and r.headers["transfer-encoding"] == "chunked"
            async for chunk in r.iter_bytes():
                first_at = first_at if first_at is not None else time.perf_counter() - t0
                pcm += chunk
        total = time.perf_counter() - t0
        seconds = len(pcm) / 2 / RATE
        print(f"speech: {seconds:.1f} s of audio, first bytes after {first_at:.3f} s of {total:.3f} s")
        assert first_at is not None and first_at < total / 2
        assert len(pcm) % 2 == 0 and 120 < seconds < 260  # ~480 words at 150 a minute
        assert rms(bytes(pcm)) > 500

        async with c.audio.speech.with_streaming_response.create(
            model="tts-1", voice="onyx", input="Have a wonderful day.", response_format="wav"
        ) as r:
            assert r.headers["content-type"] == "audio/wav"
            wav = await r.read()
        riff, riff_size, wave, fmt, fmt_size = struct.unpack("<4sI4s4sI", wav[:20])
        tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", wav[20:36])
        data, data_size = struct.unpack("<4sI", wav[36:44])
        assert (riff, wave, fmt, fmt_size, data) == (b"RIFF", b"WAVE", b"fmt ", 16, b"data")
        assert riff_size == data_size == 0xFFFFFFFF  # the streaming convention: length unknown when sent
        assert (tag, channels, rate, byte_rate, align, bits) == (1, 1, RATE, 2 * RATE, 2, 16)
        assert 0.8 < (len(wav) - 44) / 2 / RATE < 3.0 and rms(wav[44:]) > 500
        assert audio.wav_decode(wav).duration_s == (len(wav) - 44) / 2 / RATE  # readers take it to the end
        await c.close()


async def test_speech_as_server_sent_events_and_at_other_speeds() -> None:
    async with serve() as server, aiohttp.ClientSession() as http:
        url = server.base_url + "/audio/speech"

        async def events(**body: Any) -> list[dict[str, Any]]:
            body = {
                "model": "gpt-4o-mini-tts",
                "voice": "alloy",
                "input": "Turn on the kitchen lights.",
                **body,
            }
            async with http.post(url, json={**body, "stream_format": "sse"}) as r:
                assert r.status == 200 and r.content_type == "text/event-stream"
                return [json.loads(line[6:]) async for line in r.content if line.startswith(b"data: ")]

        *deltas, done = await events(response_format="pcm")
        pcm = b"".join(base64.b64decode(strict(SpeechDelta, d).audio) for d in deltas)
        usage = strict(SpeechDone, done).usage
        assert usage.input_tokens == 7 and usage.total_tokens == usage.input_tokens + usage.output_tokens
        assert usage.output_tokens == pytest.approx(len(pcm) / 2 / RATE * 20, abs=1)
        assert 1.0 < len(pcm) / 2 / RATE < 3.0 and rms(pcm) > 500
        *wav_deltas, _ = await events(response_format="wav")
        wav = b"".join(base64.b64decode(strict(SpeechDelta, d).audio) for d in wav_deltas)
        assert wav[:4] == b"RIFF" and abs(len(wav) - 44 - len(pcm)) < 0.2 * len(pcm)

        async def length(speed: float) -> int:
            body = {"model": "tts-1", "voice": "echo", "input": "Please tell me a joke about computers."}
            async with http.post(url, json={**body, "speed": speed, "response_format": "pcm"}) as r:
                assert r.status == 200
                return len(await r.read())

        normal, fast, slow = await length(1.0), await length(2.0), await length(0.5)
        assert fast < 0.75 * normal < normal < 0.75 * slow, (fast, normal, slow)


SPEECH_ERRORS: list[tuple[dict[str, Any], str | None]] = [
    ({"input": ""}, "input"),
    ({"input": "   "}, "input"),
    ({"input": "a" * 4097}, "input"),
    ({"speed": 0.2}, "speed"),
    ({"speed": 4.5}, "speed"),
    ({"speed": True}, "speed"),
    ({"response_format": "mp3"}, "response_format"),
    ({"response_format": "opus"}, "response_format"),
    ({"voice": "bogus"}, "voice"),
    ({"voice": {"id": "voice_123"}}, "voice"),
    ({"model": None}, "model"),
    ({"input": 42}, "input"),
    ({"stream_format": "mp4"}, "stream_format"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("change", "param"), SPEECH_ERRORS)
async def test_bad_speech_requests_get_a_400_naming_the_param(
    change: dict[str, Any], param: str | None
) -> None:
    body = {"model": "tts-1", "voice": "nova", "input": "Hello.", **change}
    async with serve(warm=False) as server, aiohttp.ClientSession() as http:
        async with http.post(server.base_url + "/audio/speech", json=body) as r:
            check_error(r.status, await r.json(), 400, param)
        if param == "response_format":
            assert "'wav' or 'pcm'" in (await r.json())["error"]["message"]
        if change == {"input": "a" * 4097}:  # the limit itself is fine: audio starts (and the client leaves)
            long = {**body, "input": "a " * 2048, "response_format": "pcm"}
            async with http.post(server.base_url + "/audio/speech", json=long) as r:
                assert r.status == 200 and len(await r.content.readany()) > 0


# ---- real clients end to end


async def test_openai_agents_voice_pipeline_runs_on_the_server() -> None:
    from agents.voice import (
        AudioInput,
        OpenAIVoiceModelProvider,
        VoicePipeline,
        VoicePipelineConfig,
        VoiceWorkflowBase,
    )

    class FixedReply(VoiceWorkflowBase):
        def __init__(self) -> None:
            self.heard: list[str] = []

        async def run(self, transcription: str) -> AsyncIterator[str]:
            self.heard.append(transcription)
            yield "The weather in Paris is sunny today."

    async with serve() as server:
        workflow = FixedReply()
        # The agents provider's own client (base_url=..., api_key=...) is never closed; this one is.
        openai_client = client(server)
        provider = OpenAIVoiceModelProvider(openai_client=openai_client)
        pipeline = VoicePipeline(
            workflow=workflow, config=VoicePipelineConfig(model_provider=provider, tracing_disabled=True)
        )
        speech = np.frombuffer(pcm24k("voice_sample_24k.wav"), dtype=np.int16)
        result = await pipeline.run(AudioInput(buffer=speech, frame_rate=RATE))
        chunks = [
            np.asarray(e.data, dtype=np.int16).tobytes()
            async for e in result.stream()
            if e.type == "voice_stream_event_audio" and e.data is not None
        ]
        await openai_client.close()
    assert workflow.heard == ["have a wonderful day"]
    pcm = b"".join(chunks)
    assert 1.0 < len(pcm) / 2 / RATE < 4.0 and rms(pcm) > 500


async def test_fastvoice_openai_provider_runs_on_the_server() -> None:
    from fastvoice.voice import AudioInput
    from fastvoice.voice.config import STTSettings, TTSSettings
    from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider

    async with serve() as server, OpenAIVoiceModelProvider(api_key="x", base_url=server.base_url) as provider:
        text = await provider.get_stt_model(None).transcribe(
            AudioInput(recording("voice_sample_24k.wav")), STTSettings(language="en")
        )
        pcm = b"".join(
            [c async for c in provider.get_tts_model(None).run("Hello there.", TTSSettings(speed=1.2))]
        )
    assert text == "have a wonderful day"
    assert 0.4 < len(pcm) / 2 / RATE < 2.0 and rms(pcm) > 500


async def test_whisper_gives_segments_with_times_and_the_real_words() -> None:
    from fastvoice.voice.providers.local import neural_available

    if not neural_available():
        pytest.skip("the [local] extra (Whisper, Piper) is not installed")
    async with serve(engines="local") as server:
        c = client(server)
        raw = await c.audio.transcriptions.with_raw_response.create(
            file=data_path("two_turns_16k.wav"),
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["segment", "word"],
        )
        verbose = strict(TranscriptionVerbose, raw.http_response.json())
        assert [s.text for s in verbose.segments] == [
            "Hello there.",
            "Please tell me a joke about computers.",
        ]
        first, second = verbose.segments
        assert first.start < 0.3 and 0.8 < first.end < 1.5 < 2.0 < second.start < 2.7 and second.end > 4.5
        assert verbose.text == "Hello there. Please tell me a joke about computers."
        # Words from Whisper's cross-attention, without their punctuation, each inside its segment.
        assert [w.word for w in verbose.words] == re.findall(r"[A-Za-z]+", verbose.text)
        assert all(first.start <= w.start < w.end <= first.end for w in verbose.words[:2])
        assert all(second.start <= w.start < w.end <= second.end for w in verbose.words[2:])
        weather = await c.audio.transcriptions.create(
            file=data_path("weather_22k.wav"), model="gpt-4o-transcribe"
        )
        assert {"weather", "paris"} <= set(re.findall(r"[a-z]+", weather.text.lower())), weather.text
        async with c.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="coral", input="Have a wonderful day.", response_format="pcm"
        ) as r:
            pcm = await r.read()
        assert 0.8 < len(pcm) / 2 / RATE < 3.0 and rms(pcm) > 500
        heard = await c.audio.transcriptions.create(file=("reply.pcm", pcm, "audio/pcm"), model="whisper-1")
        assert "wonderful" in heard.text.lower(), heard.text  # Piper's voice, heard back by Whisper
        await c.close()
