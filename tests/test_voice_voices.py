"""Voice names: every OpenAI speech voice speaks offline with a voice of its own, and
`TTSSettings` rejects an unknown voice with a typed error naming the valid ones."""

from __future__ import annotations

import itertools
import typing

import numpy as np
import pytest
from fastvoice.voice import TTSError, TTSSettings, UnknownVoiceError
from fastvoice.voice.config import VOICES
from fastvoice.voice.providers import local

TEXT = "Hello there. The quick brown fox jumps over the lazy dog, and then it rests."


def openai_speech_voices() -> set[str]:
    from openai.types.audio.speech_create_params import SpeechCreateParams

    voice = typing.get_type_hints(SpeechCreateParams)["voice"]
    literals = [a for a in typing.get_args(voice) if typing.get_origin(a) is typing.Literal]
    return {name for lit in literals for name in typing.get_args(lit)}


@pytest.fixture(scope="module")
def tts() -> local.LocalTTSModel:
    return local.LocalTTSModel()


async def render(tts: local.LocalTTSModel, voice: str) -> np.ndarray:
    pcm = b"".join([chunk async for chunk in tts.run(TEXT, TTSSettings(voice=voice))])
    return np.frombuffer(pcm, dtype="<i2")


def fingerprint(x: np.ndarray) -> np.ndarray:
    """The long-term log spectrum up to ~9 kHz: pitch, formants and timbre, not the words."""
    n = 1024
    frames = np.stack([x[i : i + n] * np.hanning(n) for i in range(0, len(x) - n, n // 2)])
    spectrum = np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-3)[:400]
    return spectrum - spectrum.mean()


def test_voice_list_is_openais_and_the_local_provider_maps_each_to_its_own_voice():
    assert set(VOICES) == openai_speech_voices()
    assert set(local.VOICES) == set(VOICES)
    assert len(set(local.VOICES.values())) == len(VOICES)  # no two names share an eSpeak voice


async def test_every_openai_voice_speaks_offline_and_sounds_different(tts):
    renders = {name: [await render(tts, name), await render(tts, name)] for name in VOICES}
    for name, (x, _) in renders.items():
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert len(x) > 24000 * 2 and rms > 500, (name, len(x), rms)  # seconds of real speech
    prints = {name: [fingerprint(r) for r in pair] for name, pair in renders.items()}

    def dist(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2)))

    # eSpeak jitters a little between renderings of one voice; distinct voices differ more.
    same = max(dist(*pair) for pair in prints.values())
    apart = sorted((dist(prints[a][0], prints[b][0]), a, b) for a, b in itertools.combinations(VOICES, 2))
    print(f"largest distance within a voice {same:.3f}; closest voices {apart[:3]}")
    assert apart[0][0] > 1.3 * same, apart[:3]


@pytest.mark.parametrize("bad", ["nvoa", "Nova ", "", "fable!", 7, None])
def test_unknown_voice_is_a_typed_error_naming_the_valid_ones(bad):
    with pytest.raises(UnknownVoiceError) as info:
        TTSSettings(voice=bad)
    err = info.value
    assert isinstance(err, TTSError) and isinstance(err, ValueError)
    assert err.voice == bad and err.valid == VOICES
    assert all(name in str(err) for name in VOICES)


async def test_espeak_voice_names_remain_the_offline_escape(tts):
    assert len(await render(tts, "en-us+f2")) > 24000
    with pytest.raises(UnknownVoiceError, match="cedar"):  # looks like eSpeak, but eSpeak has no such voice
        await render(tts, "xx-nothing")


async def test_a_custom_openai_voice_reaches_the_wire_and_the_offline_tts_refuses_it(tts):
    from fastvoice.testing import FakeOpenAIServer
    from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider

    custom = {"id": "voice_1234"}
    settings = TTSSettings(voice=custom)
    async with (
        FakeOpenAIServer(api_key="sk-test") as server,
        OpenAIVoiceModelProvider(api_key="sk-test", base_url=server.base_url) as provider,
    ):
        pcm = b"".join([c async for c in provider.get_tts_model(None).run("Hello there.", settings)])
        assert pcm and server.errors == []  # the body validated as SpeechCreateParams
        (body,) = [r.body for r in server.requests if r.path == "/audio/speech"]
        assert body["voice"] == custom
    with pytest.raises(UnknownVoiceError):
        await render(tts, custom)
    for bad in ({"id": ""}, {"id": 7}, {"name": "voice_1234"}, {"id": "voice_1", "x": "y"}):
        with pytest.raises(UnknownVoiceError):
            TTSSettings(voice=bad)
