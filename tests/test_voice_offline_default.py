"""Which offline engines a pipeline gets: the neural stack (`local`) by default, the light one on request or
when only it is installed, and one engine of either stack by model name."""

from __future__ import annotations

import pytest
from fastvoice.voice import Pipeline, SimpleWorkflow, STTSettings, TTSSettings
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
