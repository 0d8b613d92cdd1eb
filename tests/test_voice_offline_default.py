"""Which offline engines a pipeline gets: the neural stack (`local`) by default, the light one on request or
when only it is installed, and one engine of either stack by model name; and Whisper hearing streamed input
while it is spoken (partial transcripts, opt-in)."""

from __future__ import annotations

import asyncio

import pytest
from _data import data_path
from _speech import CLIPS, wer
from _speech import words as words_of
from fastvoice import audio
from fastvoice.voice import (
    Config,
    Pipeline,
    SimpleWorkflow,
    StreamedAudioInput,
    STTSettings,
    TTSSettings,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
    VoiceStreamEventTranscript,
)
from fastvoice.voice.providers import local as local_module
from fastvoice.voice.providers import resolve_provider
from fastvoice.voice.providers.local import LocalSTTModel, LocalTTSModel, LocalVoiceProvider

pytest.importorskip("ctranslate2", reason="the [local] extra is not installed")
pytest.importorskip("pocketsphinx", reason="the [light] extra is not installed")

from fastvoice.voice.providers.piper import PiperTTSModel
from fastvoice.voice.providers.whisper import WhisperSTTModel

NO_KEY = {"OPENAI_API_KEY": "", "CODEX_API_KEY": ""}


@pytest.fixture
def no_key(monkeypatch, tmp_path):
    for name in NO_KEY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "no-codex"))


def test_without_a_key_the_neural_engines_are_the_default(no_key):
    provider = resolve_provider(None)
    assert isinstance(provider, LocalVoiceProvider) and provider.engines == "local"
    pipeline = Pipeline(SimpleWorkflow(lambda t: "ok"))
    assert isinstance(pipeline.stt_model, WhisperSTTModel) and isinstance(pipeline.tts_model, PiperTTSModel)


def test_light_on_request_and_as_the_fallback(no_key, monkeypatch):
    light = resolve_provider("light")
    assert isinstance(light, LocalVoiceProvider) and light.engines == "light"
    assert isinstance(light.get_stt_model(None), LocalSTTModel)
    assert isinstance(light.get_tts_model(None), LocalTTSModel)
    # Only the light engines installed: the default still runs offline, on them.
    monkeypatch.setattr(local_module, "neural_available", lambda: False)
    fallback = resolve_provider(None)
    assert isinstance(fallback, LocalVoiceProvider) and fallback.engines == "light"


def test_model_names_pick_one_engine_of_either_stack():
    p = LocalVoiceProvider()
    assert isinstance(p.get_stt_model("pocketsphinx"), LocalSTTModel)
    assert isinstance(p.get_stt_model("whisper"), WhisperSTTModel)
    assert isinstance(p.get_tts_model("espeak-ng"), LocalTTSModel)
    assert isinstance(p.get_tts_model("piper"), PiperTTSModel)
    # An OpenAI model name (as in a Config written for OpenAI) takes the stack's own engine, made once.
    assert p.get_stt_model(STTSettings(model="gpt-4o-transcribe").model) is p.get_stt_model(None)
    assert p.get_tts_model(TTSSettings(model="gpt-4o-mini-tts").model) is p.get_tts_model("piper")
    with pytest.raises(ValueError, match="engines"):
        LocalVoiceProvider("heavy")
    with pytest.raises(ValueError, match="light"):
        resolve_provider("heavy")


async def _speak_into(inp, pcm: bytes, rate: int) -> None:
    step = rate // 50 * 2  # 20 ms chunks at a microphone's pace: partials can only come while speaking
    for i in range(0, len(pcm), step):
        await inp.push(pcm[i : i + step])
        await asyncio.sleep(0.02)
    await inp.close()


@pytest.mark.parametrize("partials", [True, False], ids=["partials", "finals-only"])
async def test_streamed_input_is_heard_while_spoken(no_key, partials: bool) -> None:
    wav = audio.wav_decode(data_path("voice_sample_24k.wav").read_bytes())
    speech = bytes(wav.pcm16) + bytes(wav.sample_rate * 2)  # then 1 s of silence ends the turn
    config = Config(partial_transcripts=partials)
    pipeline = Pipeline(SimpleWorkflow(lambda t: "Okay."), config, provider="local")
    await pipeline.stt_model.load()  # before the model is loaded a turn is transcribed whole
    inp = StreamedAudioInput(sample_rate=wav.sample_rate)
    result = await pipeline.run_streamed(inp)
    feeder = asyncio.create_task(_speak_into(inp, speech, wav.sample_rate))
    events = [e async for e in result]
    await feeder
    assert [e for e in events if isinstance(e, VoiceStreamEventError)] == []
    assert len(result.turns) == 1 and wer(CLIPS["voice_sample_24k.wav"], result.turns[0].transcript) == 0
    said = [e for e in events if isinstance(e, VoiceStreamEventTranscript)]
    if not partials:
        assert said == []
        return
    *pieces, final = said
    assert final.is_final and final.text == result.turns[0].transcript
    assert pieces and not any(p.is_final for p in pieces)
    # The pieces add up to the final words, and all came before the turn was answered.
    assert words_of("".join(p.text for p in pieces)) == words_of(final.text)
    assert events.index(final) < events.index(VoiceStreamEventLifecycle("turn_started"))


async def test_a_turn_is_opened_once_at_its_start(no_key) -> None:
    """`open_turn` is asked once per turn, when it starts: a model that could not stream at the start
    (not loaded yet) is not handed the rest of a turn whose beginning it never heard."""
    calls: list[int] = []

    class Counting(WhisperSTTModel):
        def open_turn(self, sample_rate, settings, on_partial=None):
            calls.append(sample_rate)
            return None if len(calls) == 1 else super().open_turn(sample_rate, settings, on_partial)

    class Provider(LocalVoiceProvider):
        def get_stt_model(self, name):
            return stt

    stt = Counting()
    await stt.load()
    wav = audio.wav_decode(data_path("two_turns_16k.wav").read_bytes())
    pipeline = Pipeline(SimpleWorkflow(lambda t: "Okay."), provider=Provider())
    inp = StreamedAudioInput(sample_rate=wav.sample_rate)
    result = await pipeline.run_streamed(inp)
    feeder = asyncio.create_task(
        _speak_into(inp, bytes(wav.pcm16) + bytes(wav.sample_rate * 2), wav.sample_rate)
    )
    events = [e async for e in result]
    await feeder
    assert [e for e in events if isinstance(e, VoiceStreamEventError)] == []
    assert calls == [16000, 16000]  # two turns, one call each (the first one transcribed whole)
    assert "joke about computers" in result.turns[1].transcript
