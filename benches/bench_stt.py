"""Offline speech to text: Whisper tiny.en (CTranslate2, int8) vs PocketSphinx, side by side.

One group per shared clip (`stt-<clip>`, the four speech files of tests/data), each timing one
`transcribe` call of fastvoice's model (decode, resample to 16 kHz, recognise) once the model is
loaded. `extra_info` has the real-time factor (median time / audio duration), the word error rate
against the clip's reference text and the transcript. The load itself is timed once per process
(`stt-load`, Whisper only: PocketSphinx's decoder loads in milliseconds).

Every benchmark asserts its output; in the normal test run each runs once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from _data import data_path
from _speech import CLIPS, wer
from fastvoice.voice import AudioInput, STTSettings
from fastvoice.voice.providers import STTModel

ROUNDS = 5
_models: dict[str, STTModel] = {}


def _model(impl: str) -> STTModel:
    if impl not in _models:
        if impl == "whisper":
            pytest.importorskip("ctranslate2", reason="the [local] extra is not installed")
            from fastvoice.voice.providers.whisper import whisper_stt_model

            _models[impl] = whisper_stt_model()
        else:
            pytest.importorskip("pocketsphinx", reason="the [local] extra is not installed")
            from fastvoice.voice.providers.local import LocalSTTModel

            _models[impl] = LocalSTTModel()
    return _models[impl]


@pytest.mark.parametrize("name", list(CLIPS))
@pytest.mark.parametrize("impl", ["whisper", "pocketsphinx"])
def test_stt_clip(benchmark: Any, impl: str, name: str) -> None:
    data = data_path(name).read_bytes()
    duration = AudioInput(data).duration_s
    stt = _model(impl)
    loop = asyncio.new_event_loop()

    def run() -> str:
        return loop.run_until_complete(stt.transcribe(AudioInput(data), STTSettings()))

    try:
        run()  # load the model outside the timing
        benchmark.group = f"stt-{name.removesuffix('.wav')}"
        if benchmark.disabled:
            text = benchmark(run)
        else:
            text = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    finally:
        loop.close()
    error_rate = wer(CLIPS[name], text)
    benchmark.extra_info.update(audio_s=round(duration, 3), wer=round(error_rate, 3), transcript=text)
    if benchmark.stats is not None:
        benchmark.extra_info["rtf"] = round(benchmark.stats.stats.median / duration, 4)
    if impl == "whisper":
        assert error_rate <= 0.05, text
    else:
        assert isinstance(text, str)  # PocketSphinx is the baseline: it only has to run


def test_stt_load(benchmark: Any, tmp_path: Any) -> None:
    """Verify + load Whisper into a fresh cache entry (a directory of links to the packaged files)."""
    pytest.importorskip("ctranslate2", reason="the [local] extra is not installed")
    from fastvoice.voice.providers import whisper

    src = whisper.find_model_dir()
    counter = iter(range(1_000_000))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        d = tmp_path / f"model{next(counter)}"
        d.mkdir()
        for f in whisper.MODEL_FILES:
            (d / f).symlink_to(src / f)
        return (d.resolve(),), {}

    def load(path: Any) -> Any:
        try:
            return whisper.load_engine(path)
        finally:
            whisper._engines.pop(path, None)  # each round loads afresh; nothing stays cached

    benchmark.group = "stt-load"
    t0 = time.perf_counter()
    engine = benchmark.pedantic(load, setup=setup, rounds=1 if benchmark.disabled else 3, iterations=1)
    assert engine is not None and not engine._model.is_multilingual
    benchmark.extra_info["first_round_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
