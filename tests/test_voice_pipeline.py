"""Pipeline semantics (fastvoice.voice.Pipeline) with a scripted provider.

`ScriptedProvider` is a real implementation of the public provider interface, not a mock:
its STT returns scripted transcripts (and records what it was given), its TTS "speaks" a
sentence as the sentence's UTF-8 bytes, so the output audio decodes back to the text that
was spoken and ordering, streaming and failures can be asserted exactly. The real engines
are tested in test_voice_local.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest
from fastvoice import AudioFormatError, voice
from fastvoice.voice import (
    AudioInput,
    Config,
    NoSpeechError,
    Pipeline,
    SimpleWorkflow,
    StreamedAudioInput,
    TTSError,
    TTSSettings,
    TurnDetection,
    VoiceStreamEventAudio,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
)
from fastvoice.voice.providers import STTModel, TTSModel, find_api_key
from voice_peers import PeerProvider

RATE = 16000


class ScriptedSTT(STTModel):
    def __init__(self, transcripts: list[str | BaseException]) -> None:
        self.script = list(transcripts)
        self.heard: list[tuple[int, int]] = []  # (samples, rate) of each clip

    @property
    def model_name(self) -> str:
        return "scripted-stt"

    async def transcribe(self, audio, settings):
        pcm, rate = audio.decode()
        self.heard.append((len(pcm) // 2, rate))
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


class TextTTS(TTSModel):
    """Speaks `text` as its UTF-8 bytes (padded to whole samples) in `chunk`-byte pieces."""

    def __init__(self, chunk: int = 4, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.chunk, self.delay, self.fail_on = chunk, delay, fail_on
        self.started: list[str] = []

    @property
    def model_name(self) -> str:
        return "text-tts"

    async def run(self, text: str, settings) -> AsyncIterator[bytes]:
        self.started.append(text)
        data = text.encode()
        data += b"\0" * (len(data) % 2)
        for i in range(0, len(data), self.chunk):
            if self.fail_on is not None and self.fail_on in text and i >= len(data) // 2:
                raise ConnectionResetError("stream cut mid-way")
            if self.delay:
                await asyncio.sleep(self.delay)
            yield data[i : i + self.chunk]


ScriptedProvider = PeerProvider  # any STT and TTS model behind the provider interface


def speech(seconds: float = 0.5, rate: int = RATE, amp: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * 440 * t) * amp * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * int(seconds * rate))


def make(workflow, transcripts=("hello world",), tts=None, **config) -> tuple[Pipeline, ScriptedSTT, TextTTS]:
    stt = ScriptedSTT(list(transcripts))
    tts = tts or TextTTS()
    return Pipeline(workflow, Config(**config), provider=ScriptedProvider(stt, tts)), stt, tts


async def events_of(result) -> list:
    return [e async for e in result]


def kinds(events) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, VoiceStreamEventLifecycle):
            out.append(e.event)
        elif isinstance(e, VoiceStreamEventError):
            out.append("error")
        elif not out or out[-1] != "audio":
            out.append("audio")
    return out


def spoken(events) -> str:
    return b"".join(e.data for e in events if isinstance(e, VoiceStreamEventAudio)).decode().replace("\0", "")


echo = SimpleWorkflow(lambda text: [f"You said {text}."])


async def test_single_turn():
    pipeline, stt, _ = make(echo)
    result = await pipeline.run(AudioInput(speech(), format="pcm16", sample_rate=RATE))
    events = await events_of(result)
    assert kinds(events) == ["turn_started", "audio", "turn_ended", "session_ended"]
    assert spoken(events) == "You said hello world."
    assert stt.heard == [(RATE // 2, RATE)]
    assert [(t.transcript, t.reply) for t in result.turns] == [("hello world", "You said hello world.")]
    turn = result.turns[0]
    assert turn.stt_s is not None and turn.first_audio_s is not None and 0 < turn.first_audio_s < 1
    assert result.errors == [] and result.done


async def test_openai_agents_style_consumer():
    pipeline, _, _ = make(echo)
    result = await pipeline.run(AudioInput(speech(), sample_rate=RATE))
    types = [event.type async for event in result.stream()]
    assert types[0] == "voice_stream_event_lifecycle" and "voice_stream_event_audio" in types
    assert [e async for e in result] == []  # one consumer: the session already ended


async def test_greeting_turn_comes_first():
    wf = SimpleWorkflow(lambda text: text.upper() + ".", greeting="Hi! I'm listening.")
    pipeline, _, tts = make(wf)
    events = await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))
    assert kinds(events) == ["turn_started", "audio", "turn_ended"] * 2 + ["session_ended"]
    assert spoken(events) == "Hi!I'm listening.HELLO WORLD."
    assert tts.started == ["Hi!", "I'm listening.", "HELLO WORLD."]


async def _agen(text: str):
    for word in text.split(" "):
        await asyncio.sleep(0)
        yield word + " "


async def _async_list(text: str):
    await asyncio.sleep(0)
    return ["One. Two.", "Three."]


@pytest.mark.parametrize(
    "fn",
    [
        lambda text: ["One. Two.", "Three."],
        lambda text: "One. Two. Three.",
        lambda text: _agen("One. Two. Three."),
        _async_list,
        lambda text: (piece for piece in ["One.", " Two. Three."]),
    ],
    ids=["list", "str", "async-iterator", "async-def", "generator"],
)
async def test_workflow_return_types(fn):
    pipeline, _, tts = make(SimpleWorkflow(fn))
    events = await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))
    assert tts.started == ["One.", "Two.", "Three."]
    assert spoken(events) == "One.Two.Three."
    assert "error" not in kinds(events)


async def test_custom_workflow_object_keeps_state():
    class Counter:
        def __init__(self):
            self.n = 0

        def greeting(self):
            return None

        async def run(self, text):
            self.n += 1
            yield f"Turn {self.n}: {text}."

    wf = Counter()
    pipeline, _, _ = make(wf, transcripts=["a", "b"])
    for expected in ("Turn 1: a.", "Turn 2: b."):
        assert spoken(await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))) == expected
    assert wf.n == 2


async def test_first_sentence_is_spoken_before_the_workflow_finishes():
    first_audio = asyncio.Event()

    async def slow_llm(text):
        yield "The first sentence is ready. The sec"
        await asyncio.wait_for(first_audio.wait(), 5)  # deadlocks unless audio streams early
        yield "ond one follows."

    pipeline, _, _ = make(SimpleWorkflow(slow_llm))
    result = await pipeline.run(AudioInput(speech(), sample_rate=RATE))
    events = []
    async for event in result:
        events.append(event)
        if isinstance(event, VoiceStreamEventAudio):
            first_audio.set()
    assert spoken(events) == "The first sentence is ready.The second one follows."
    assert "error" not in kinds(events)


async def test_audio_stays_in_sentence_order_when_later_sentences_finish_first():
    class SlowFirst(TextTTS):
        async def run(self, text, settings):
            await asyncio.sleep(0.05 if text.startswith("Slow") else 0)
            async for chunk in super().run(text, settings):
                yield chunk

    tts = SlowFirst()
    pipeline, _, _ = make(
        SimpleWorkflow(lambda t: "Slow one. Fast two. Fast three."), tts=tts, tts_concurrency=3
    )
    result = await pipeline.run(AudioInput(speech(), sample_rate=RATE))
    events = await events_of(result)
    assert spoken(events) == "Slow one.Fast two.Fast three."
    assert 0.05 <= result.turns[0].first_audio_s < 1  # waited for the slow first sentence


@pytest.mark.parametrize("chunk", [1, 3, 5])
async def test_odd_provider_chunks_become_whole_samples(chunk):
    pipeline, _, _ = make(SimpleWorkflow(lambda t: "Odd sized chunks here."), tts=TextTTS(chunk=chunk))
    events = await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))
    audio = [e.data for e in events if isinstance(e, VoiceStreamEventAudio)]
    assert all(len(a) % 2 == 0 and len(a) > 0 for a in audio)
    assert b"".join(audio) == b"Odd sized chunks here.\0"[: len(b"".join(audio))]


@pytest.mark.parametrize("dtype", ["int16", np.int16, "float32", np.float32])
async def test_dtype_options(dtype):
    pipeline, _, _ = make(echo, tts_settings=TTSSettings(dtype=dtype))
    audio = await (await pipeline.run(AudioInput(speech(), sample_rate=RATE))).collect_audio()
    ref = np.frombuffer(b"You said hello world.\0", dtype="<i2")
    assert isinstance(audio, np.ndarray) and audio.dtype == np.dtype(dtype)
    if audio.dtype == np.int16:
        np.testing.assert_array_equal(audio, ref)
    else:
        np.testing.assert_array_equal(audio, ref.astype(np.float32) / 32768.0)


async def test_default_output_is_bytes_and_bad_dtype_is_rejected():
    pipeline, _, _ = make(echo)
    assert await (await pipeline.run(AudioInput(speech(), sample_rate=RATE))).collect_audio() == (
        b"You said hello world.\0"
    )
    with pytest.raises(ValueError, match="dtype"):
        make(echo, tts_settings=TTSSettings(dtype="float64"))


# -- errors: each one gives a VoiceStreamEventError and session_ended --


def _error_of(events):
    errors = [e.error for e in events if isinstance(e, VoiceStreamEventError)]
    assert len(errors) == 1, events
    assert kinds(events)[-1] == "session_ended"
    return errors[0]


async def test_empty_audio():
    pipeline, stt, _ = make(echo)
    events = await events_of(await pipeline.run(AudioInput(b"", format="pcm16")))
    err = _error_of(events)
    assert isinstance(err, NoSpeechError) and "empty" in str(err)
    assert kinds(events) == ["error", "session_ended"] and stt.heard == []


async def test_nothing_recognised():
    pipeline, _, _ = make(echo, transcripts=["  "])
    err = _error_of(await events_of(await pipeline.run(AudioInput(silence(1), sample_rate=RATE))))
    assert isinstance(err, NoSpeechError) and "no speech" in str(err)


async def test_corrupt_wav():
    pipeline, _, _ = make(echo)
    inp = AudioInput(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    assert inp.format == "wav"
    err = _error_of(await events_of(await pipeline.run(inp)))
    assert isinstance(err, AudioFormatError)


async def test_workflow_raising():
    def broken(text):
        raise KeyError("no such intent")

    pipeline, _, _ = make(SimpleWorkflow(broken))
    events = await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))
    assert isinstance(_error_of(events), KeyError)
    assert kinds(events) == ["turn_started", "error", "turn_ended", "session_ended"]


async def test_workflow_raising_mid_stream_keeps_the_audio_before():
    async def flaky(text):
        yield "Fine so far. "
        raise RuntimeError("model went away")

    pipeline, _, _ = make(SimpleWorkflow(flaky))
    events = await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE)))
    assert str(_error_of(events)) == "model went away"
    assert spoken(events) == "Fine so far."
    assert kinds(events) == ["turn_started", "audio", "error", "turn_ended", "session_ended"]


async def test_workflow_returning_garbage():
    pipeline, _, _ = make(SimpleWorkflow(lambda text: 42))
    err = _error_of(await events_of(await pipeline.run(AudioInput(speech(), sample_rate=RATE))))
    assert isinstance(err, TypeError) and "int" in str(err)


async def test_tts_stream_cut_mid_way():
    tts = TextTTS(fail_on="Second")
    pipeline, _, _ = make(SimpleWorkflow(lambda t: "First sentence. Second sentence. Third."), tts=tts)
    result = await pipeline.run(AudioInput(speech(), sample_rate=RATE))
    events = await events_of(result)
    err = _error_of(events)
    assert isinstance(err, TTSError) and isinstance(err.__cause__, ConnectionResetError)
    said = spoken(events)
    assert said.startswith("First sentence.Second") and "Third" not in said
    with pytest.raises(TTSError):
        await result.collect_audio()  # the session already ended: raises the recorded error


async def test_collect_audio_raises_or_returns_partial():
    pipeline, _, _ = make(SimpleWorkflow(lambda t: "Good. Bad one."), tts=TextTTS(fail_on="Bad"))
    with pytest.raises(TTSError):
        await (await pipeline.run(AudioInput(speech(), sample_rate=RATE))).collect_audio()
    pipeline, _, _ = make(SimpleWorkflow(lambda t: "Good. Bad one."), tts=TextTTS(fail_on="Bad"))
    partial = await (await pipeline.run(AudioInput(speech(), sample_rate=RATE))).collect_audio(
        raise_errors=False
    )
    assert partial.startswith(b"Good.") and b"one" not in partial


async def test_aclose_ends_a_hanging_session():
    async def hangs(text):
        yield "Before the hang. "
        await asyncio.Event().wait()

    pipeline, _, _ = make(SimpleWorkflow(hangs))
    result = await pipeline.run(AudioInput(speech(), sample_rate=RATE))
    seen = []
    async for event in result:
        seen.append(event)
        if isinstance(event, VoiceStreamEventAudio):
            await result.aclose()
    assert kinds(seen)[-1] == "session_ended" and result.done


async def test_run_type_errors():
    pipeline, _, _ = make(echo)
    with pytest.raises(TypeError, match="run_streamed"):
        await pipeline.run(StreamedAudioInput())
    with pytest.raises(TypeError, match="StreamedAudioInput"):
        await pipeline.run_streamed(AudioInput(b""))
    with pytest.raises(TypeError, match="run"):
        Pipeline(object(), provider=ScriptedProvider(ScriptedSTT([]), TextTTS()))


# -- streamed input --


async def test_streamed_turns_with_a_failed_turn_in_between():
    # Tones stand in for speech: the energy VAD's turns (Silero's are tested in test_vad_silero.py).
    pipeline, stt, _ = make(
        echo,
        transcripts=["first", NoSpeechError("noise"), "third"],
        turn_detection=TurnDetection(engine="energy"),
    )
    inp = StreamedAudioInput(sample_rate=RATE)
    result = await pipeline.run_streamed(inp)
    stream = (
        silence(0.3) + speech(0.6) + silence(1.0) + speech(0.3) + silence(1.0) + speech(0.8) + silence(0.2)
    )
    for i in range(0, len(stream), 640):  # 20 ms pushes
        await inp.push(stream[i : i + 640])
    await inp.close()
    events = await events_of(result)
    assert kinds(events) == [
        *("turn_started", "audio", "turn_ended"),
        "error",
        *("turn_started", "audio", "turn_ended"),
        "session_ended",
    ]
    assert spoken(events) == "You said first.You said third."
    # Turn lengths: speech + up to 200 ms pre-roll + the 700 ms hangover; the last is cut by close().
    durations = [n / RATE for n, _ in stt.heard]
    assert durations[0] == pytest.approx(0.6 + 0.2 + 0.7, abs=0.08)
    assert durations[1] == pytest.approx(0.3 + 0.2 + 0.7, abs=0.08)
    assert durations[2] == pytest.approx(0.8 + 0.2 + 0.2, abs=0.08)


async def test_streamed_input_greeting_and_no_speech():
    wf = SimpleWorkflow(lambda t: "never", greeting="Welcome.")
    pipeline, stt, _ = make(wf, transcripts=[])
    inp = StreamedAudioInput(sample_rate=RATE)
    result = await pipeline.run_streamed(inp)
    await inp.push(np.zeros(RATE, dtype=np.int16))
    await inp.close()
    events = await events_of(result)
    assert kinds(events) == ["turn_started", "audio", "turn_ended", "session_ended"]
    assert spoken(events) == "Welcome." and stt.heard == []


async def test_streamed_input_feeds_one_run_only():
    pipeline, _, _ = make(echo, transcripts=[])
    inp = StreamedAudioInput(sample_rate=RATE)
    result = await pipeline.run_streamed(inp)
    with pytest.raises(RuntimeError, match="already used"):
        await pipeline.run_streamed(inp)
    await inp.close()
    assert kinds(await events_of(result)) == ["session_ended"]


async def test_streamed_input_checks_chunks():
    inp = StreamedAudioInput(sample_rate=RATE, channels=2)
    with pytest.raises(AudioFormatError):
        await inp.push(b"\x00\x01\x02")  # not whole samples
    with pytest.raises(AudioFormatError):
        await inp.push(np.zeros(3, dtype=np.int32))
    await inp.close()
    await inp.close()
    with pytest.raises(RuntimeError, match="close"):
        await inp.push(b"\x00\x00\x00\x00")


# -- provider selection --


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    for var in ("CODEX_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    return tmp_path


def test_api_key_precedence(no_keys, monkeypatch):
    assert find_api_key() is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert find_api_key() == "sk-env"
    (no_keys / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": "sk-auth"}))
    assert find_api_key() == "sk-auth"
    monkeypatch.setenv("CODEX_API_KEY", "sk-codex")
    assert find_api_key() == "sk-codex"
    (no_keys / "auth.json").write_text("{not json")
    monkeypatch.delenv("CODEX_API_KEY")
    assert find_api_key() == "sk-env"


def test_provider_selection(no_keys, monkeypatch, caplog):
    from fastvoice.voice.providers.local import LocalVoiceProvider

    with caplog.at_level(logging.INFO, logger="fastvoice"):
        assert isinstance(Pipeline(echo).provider, LocalVoiceProvider)
    assert "no API key found, using offline providers" in caplog.text
    assert isinstance(Pipeline(echo, provider="local").provider, LocalVoiceProvider)
    from fastvoice.realtime.auth import MissingAPIKeyError
    from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider

    with pytest.raises(MissingAPIKeyError, match="no OpenAI API key found"):
        Pipeline(echo, provider="openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert isinstance(Pipeline(echo).provider, OpenAIVoiceModelProvider)
    with pytest.raises(ValueError, match="provider"):
        Pipeline(echo, provider="azure")


def test_config_defaults():
    c = voice.Config()
    assert (c.stt_settings.model, c.tts_settings.model, c.tts_settings.voice) == (
        "gpt-4o-transcribe",
        "gpt-4o-mini-tts",
        "nova",
    )
    assert c.tts_settings.dtype is None and c.tts_concurrency >= 1


# -- telemetry --


async def test_telemetry_events_are_emitted():
    telemetry = pytest.importorskip(
        "fastvoice.telemetry", reason="fastvoice.telemetry is not merged into this build yet"
    )
    seen: list[tuple[tuple[str, ...], dict, dict]] = []
    names = [
        ("fastvoice", "voice", part, phase)
        for part, phases in {
            "pipeline": ("start", "stop"),
            "stt": ("start", "complete"),
            "tts": ("start", "chunk", "complete"),
        }.items()
        for phase in phases
    ]
    telemetry.attach_many("voice-test", names, lambda e, m, md, cfg=None: seen.append((tuple(e), m, md)))
    try:
        pipeline, _, _ = make(echo)
        await (await pipeline.run(AudioInput(speech(), sample_rate=RATE))).collect_audio()
    finally:
        telemetry.detach("voice-test")
    order = [e[2:] for e, _, _ in seen]
    assert order[0] == ("pipeline", "start") and order[-1] == ("pipeline", "stop")
    assert {e for e, _, _ in seen} == set(names)
    assert order.index(("stt", "complete")) < order.index(("tts", "start"))
    assert order.count(("tts", "chunk")) == math.ceil(len(b"You said hello world.\0") / 4)
    stt_done = next(m for e, m, _ in seen if e[2:] == ("stt", "complete"))
    assert stt_done["audio_duration"] == pytest.approx(0.5)
    tts_done = next(m for e, m, _ in seen if e[2:] == ("tts", "complete"))
    assert tts_done["bytes"] == len(b"You said hello world.\0")
    stop = next(m for e, m, _ in seen if e[2:] == ("pipeline", "stop"))
    assert stop["turns"] == 1 and stop["errors"] == 0 and stop["duration"] > 0
