"""The Silero VAD turn detector (fastvoice.voice._silero) on real speech from tests/data.

Reference: `two_turns_16k.wav` is "Hello there." (speech ~0.35-1.02 s), 1.5 s of silence, then
"Please tell me a joke about computers." (~2.59-4.61 s). The model scores 32 ms windows, so a
boundary is only known to a window; at 16 kHz the detector lands on 0.352-1.024 s and
2.592-4.608 s. Other input rates go through a resampler (24 kHz) or the model's own 8 kHz
variant, which move the fading end of a word across the 0.35 end threshold by up to two windows
(64 ms, measured: 8 kHz ends at 1.088 s). TOL = two windows plus 10 ms covers that and no more:
a detector off by a syllable (~100 ms or more) fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _data import data_path
from fastvoice import audio
from fastvoice.voice import (
    AudioInput,
    Config,
    Pipeline,
    ProviderUnavailableError,
    SimpleWorkflow,
    StreamedAudioInput,
    TurnDetection,
    VoiceStreamEventError,
    VoiceStreamEventLifecycle,
)
from fastvoice.voice.providers import STTModel
from voice_peers import CountingTTS, PeerProvider

pytest.importorskip("onnxruntime", reason="the Silero VAD needs onnxruntime (pip install 'fastvoice[local]')")

from fastvoice.voice import _silero, _vad
from fastvoice.voice._silero import (
    SileroModelMismatchError,
    SileroTurnDetector,
    SileroUnavailableError,
    SileroVAD,
    speech_segments,
)

REFERENCE = [(0.35, 1.02), (2.59, 4.61)]
TOL = 2 * 0.032 + 0.010
WINDOW_S = 0.032


def clip(rate: int = 16000) -> bytes:
    with wave.open(str(data_path("two_turns_16k.wav"))) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = w.readframes(w.getnframes())
    if rate == 16000:
        return pcm
    return audio.resample(audio.from_pcm16(pcm), 16000, rate).tobytes()


def feed(det: SileroTurnDetector | _vad.EnergyTurnDetector, pcm: bytes, step: int) -> list[bytes]:
    turns: list[bytes] = []
    for i in range(0, len(pcm), step):
        turns += det.push(pcm[i : i + step])
    if (last := det.flush()) is not None:
        turns.append(last)
    return turns


def ms(rate: int, n: int) -> int:
    """Bytes of PCM16 in `n` ms."""
    return 2 * (rate * n // 1000)


@pytest.mark.parametrize("rate", [16000, 24000, 8000])
def test_finds_the_reference_segments(rate):
    found = speech_segments(clip(rate), rate)
    assert len(found) == 2, found
    for (start, end), (ref_start, ref_end) in zip(found, REFERENCE, strict=True):
        assert start == pytest.approx(ref_start, abs=TOL) and end == pytest.approx(ref_end, abs=TOL), found


@pytest.mark.parametrize("rate", [16000, 24000, 8000])
def test_turns_are_cut_from_the_input_with_pre_roll_and_trailing_silence(rate):
    pcm = clip(rate)
    settings = TurnDetection()
    det = SileroTurnDetector(rate, settings)
    turns = feed(det, pcm, ms(rate, 20))
    assert len(turns) == 2
    segments = speech_segments(pcm, rate)
    pos = 0
    for turn, (start, end) in zip(turns, segments, strict=True):
        at = pcm.find(turn, pos)
        assert at >= 0, "a turn must be the caller's own bytes, not resampled audio"
        first, last = at / 2 / rate, (at + len(turn)) / 2 / rate
        # prefix_ms before the speech, plus the one window the pre-roll is counted from.
        assert start - first == pytest.approx(settings.prefix_ms / 1000 + WINDOW_S, abs=0.002)
        assert last - end == pytest.approx(settings.silence_ms / 1000, abs=0.002)
        pos = at + len(turn)
    assert det.flush() is None and not det.in_turn


def test_prefix_padding_is_included_and_never_reaches_into_the_previous_turn():
    pcm = clip()
    starts = {}
    for prefix in (0, 300, 2000):
        turns = feed(SileroTurnDetector(16000, TurnDetection(prefix_ms=prefix)), pcm, 640)
        assert len(turns) == 2
        starts[prefix] = [pcm.find(t) / 2 / 16000 for t in turns]
        assert turns[1].endswith(feed(SileroTurnDetector(16000, TurnDetection(prefix_ms=0)), pcm, 640)[1])
    assert starts[300][0] == pytest.approx(starts[0][0] - 0.3, abs=0.001)
    assert starts[300][1] == pytest.approx(starts[0][1] - 0.3, abs=0.001)
    # 2 s of pre-roll: the first turn starts at the stream's start, the second right after the first.
    first_end = 0.352 + 0.672 + 0.7
    assert starts[2000][0] == 0.0
    assert starts[2000][1] == pytest.approx(first_end, abs=TOL)


@pytest.mark.parametrize("rate", [16000, 24000, 8000])
def test_chunk_size_does_not_change_the_turns(rate):
    pcm = clip(rate)
    reference = feed(SileroTurnDetector(rate), pcm, ms(rate, 10))
    assert len(reference) == 2
    assert feed(SileroTurnDetector(rate), pcm, ms(rate, 100)) == reference
    assert feed(SileroTurnDetector(rate), pcm, len(pcm)) == reference
    rng = random.Random(rate)
    det, turns, i = SileroTurnDetector(rate), [], 0
    while i < len(pcm):
        n = 2 * rng.randint(1, 3000)
        turns += det.push(pcm[i : i + n])
        i += n
    assert turns + [t for t in [det.flush()] if t is not None] == reference


def test_probabilities_do_not_depend_on_chunking():
    pcm = clip()
    whole = SileroVAD(16000).process(pcm)
    assert len(whole) == len(pcm) // 2 // 512 and whole.dtype == np.float32
    assert ((whole >= 0) & (whole <= 1)).all()
    vad = SileroVAD(16000)
    parts = np.concatenate([vad.process(pcm[i : i + 320]) for i in range(0, len(pcm), 320)])
    np.testing.assert_array_equal(parts, whole)
    assert whole[int(0.6 / WINDOW_S)] > 0.9 and whole[int(2.0 / WINDOW_S)] < 0.1  # speech, the pause


@pytest.mark.parametrize("rate", [16000, 24000])
def test_silence_and_white_noise_are_no_turn(rate):
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(5 * rate) * 0.2 * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    for pcm in (bytes(10 * rate), noise):
        det = SileroTurnDetector(rate)
        assert feed(det, pcm, ms(rate, 20)) == []
    # the same noise under the speech: the turns are still found
    speech = np.frombuffer(clip(rate), "<i2").astype(np.float64)
    quiet = rng.standard_normal(len(speech)) * 0.01 * 32767
    noisy = (speech + quiet).clip(-32768, 32767).astype("<i2").tobytes()
    assert len(speech_segments(noisy, rate)) == 2


def test_flush_mid_turn_returns_the_turn_so_far_and_resets():
    pcm = clip()
    det = SileroTurnDetector(16000)
    cut = ms(16000, 800)  # inside "Hello there."
    assert feed_no_flush(det, pcm[:cut]) == [] and det.in_turn
    turn = det.flush()
    assert turn is not None and pcm[:cut].endswith(turn)
    assert len(turn) / 2 / 16000 == pytest.approx(0.8 - (0.352 - 0.2 - WINDOW_S), abs=0.002)
    assert not det.in_turn and det.flush() is None
    assert feed(det, pcm, 640) == feed(SileroTurnDetector(16000), pcm, 640)  # reusable, fresh state


def feed_no_flush(det: SileroTurnDetector, pcm: bytes) -> list[bytes]:
    return [t for i in range(0, len(pcm), 640) for t in det.push(pcm[i : i + 640])]


def test_streams_are_independent_and_share_one_session_across_threads():
    pcm, pcm24 = clip(), clip(24000)
    expected = feed(SileroTurnDetector(16000), pcm, 640)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: feed(SileroTurnDetector(16000), pcm, 640), range(4)))
    assert results == [expected] * 4
    # interleaved in one thread: per-stream state does not leak between detectors
    a, b = SileroTurnDetector(16000), SileroTurnDetector(24000)
    got_a, got_b = [], []
    for i in range(0, len(pcm), 640):
        got_a += a.push(pcm[i : i + 640])
        got_b += b.push(pcm24[i * 3 // 2 : (i + 640) * 3 // 2])
    assert got_a == expected[:2] and len(got_b) == 2
    assert a._vad._sess is b._vad._sess is _silero.shared_session()


@pytest.mark.parametrize("rate", [4000, 0, 500_000, 16000.0, True, "16000"])
def test_bad_rate_is_a_value_error(rate):
    with pytest.raises(ValueError, match="sample_rate"):
        SileroTurnDetector(rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [TurnDetection(threshold=0.0), TurnDetection(threshold=1.5), TurnDetection(silence_ms=0)],
)
def test_bad_settings_are_a_value_error(settings):
    with pytest.raises(ValueError, match="turn detection settings"):
        SileroTurnDetector(16000, settings)


def test_a_changed_model_file_is_refused(tmp_path: Path):
    copy = tmp_path / "silero_vad.onnx"
    shutil.copyfile(_silero.model_path(), copy)
    assert _silero.load_model(copy) is not None  # the pristine copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(data)
    with pytest.raises(SileroModelMismatchError, match="does not match the pinned") as info:
        _silero.load_model(copy)
    assert info.value.expected == _silero.MODEL_SHA256 and info.value.actual != _silero.MODEL_SHA256
    assert isinstance(info.value, ProviderUnavailableError)
    with pytest.raises(SileroUnavailableError, match="cannot be read"):
        _silero.load_model(tmp_path / "missing.onnx")


def test_vendored_model_matches_the_pin():
    path = _silero.model_path()
    assert path.stat().st_size == _silero.MODEL_SIZE
    licence = path.with_name("SILERO_VAD_LICENSE.txt").read_text()
    assert "MIT License" in licence and _silero.MODEL_SHA256 in licence


def test_factory_picks_the_engine(monkeypatch, caplog):
    assert isinstance(_vad.make_turn_detector(16000), SileroTurnDetector)  # auto, onnxruntime present
    assert isinstance(_vad.make_turn_detector(16000, TurnDetection(engine="silero")), SileroTurnDetector)
    energy = _vad.make_turn_detector(16000, TurnDetection(engine="energy"))
    assert isinstance(energy, _vad.EnergyTurnDetector)
    with pytest.raises(ValueError, match="engine"):
        _vad.make_turn_detector(16000, TurnDetection(engine="webrtc"))  # type: ignore[arg-type]
    monkeypatch.setattr(_silero, "available", lambda: False)
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'fastvoice\[local\]'"):
        _vad.make_turn_detector(16000, TurnDetection(engine="silero"))
    with caplog.at_level(logging.DEBUG, logger="fastvoice"):
        assert isinstance(_vad.make_turn_detector(16000), _vad.EnergyTurnDetector)
    assert "turn detection uses the energy VAD" in caplog.text


class RecordingSTT(STTModel):
    def __init__(self) -> None:
        self.heard: list[bytes] = []

    @property
    def model_name(self) -> str:
        return "recording-stt"

    async def transcribe(self, audio_input: AudioInput, settings) -> str:  # type: ignore[no-untyped-def]
        pcm, _ = audio_input.decode()
        self.heard.append(pcm)
        return f"turn {len(self.heard)}"


async def run_streamed(pcm: bytes, rate: int, config: Config) -> tuple[list, RecordingSTT]:
    stt = RecordingSTT()
    pipeline = Pipeline(SimpleWorkflow(lambda t: [f"{t}."]), config, PeerProvider(stt, CountingTTS(480)))
    inp = StreamedAudioInput(sample_rate=rate)
    result = await pipeline.run_streamed(inp)
    for i in range(0, len(pcm), ms(rate, 20)):
        await inp.push(pcm[i : i + ms(rate, 20)])
    await inp.close()
    events = await asyncio.wait_for(_collect(result), 30)
    return events, stt


async def _collect(result) -> list:  # type: ignore[no-untyped-def]
    return [e async for e in result]


async def test_pipeline_streamed_run_uses_silero_by_default():
    pcm = clip(24000)
    events, stt = await run_streamed(pcm, 24000, Config())
    lifecycle = [e.event for e in events if isinstance(e, VoiceStreamEventLifecycle)]
    assert lifecycle == ["turn_started", "turn_ended"] * 2 + ["session_ended"]
    assert stt.heard == feed(SileroTurnDetector(24000), pcm, ms(24000, 20))
    # And the energy VAD would have cut differently: the default really is Silero.
    energy = feed(_vad.EnergyTurnDetector(24000), pcm, ms(24000, 20))
    assert stt.heard != energy


async def test_pipeline_reports_a_missing_silero(monkeypatch):
    monkeypatch.setattr(_silero, "available", lambda: False)
    events, stt = await run_streamed(clip(), 16000, Config(turn_detection=TurnDetection(engine="silero")))
    errors = [e.error for e in events if isinstance(e, VoiceStreamEventError)]
    assert len(errors) == 1 and isinstance(errors[0], ProviderUnavailableError) and stt.heard == []
    assert isinstance(events[-1], VoiceStreamEventLifecycle) and events[-1].event == "session_ended"


class ScriptedSession:
    """Stands in for the onnxruntime session: window k scores `probs[k]` (the state is passed
    through), so the hysteresis is tested window by window."""

    def __init__(self, probs: list[float]) -> None:
        self.probs = list(probs)
        self.inputs: list[np.ndarray] = []

    def run(self, outputs, feeds):  # type: ignore[no-untyped-def]
        self.inputs.append(feeds["input"].copy())
        return np.array([[self.probs.pop(0)]], np.float32), feeds["state"]


def test_hysteresis_window_by_window():
    probs = (
        [0.1] * 5
        + [0.6] * 3  # 96 ms: short of min_speech_ms (4 windows), no turn
        + [0.1] * 3
        + [0.6] * 4  # windows 11-14: the turn starts at window 11
        + [0.4] * 30  # between threshold - 0.15 and threshold: still speech, no countdown
        + [0.3] * 5  # windows 45-49: the countdown starts at 45
        + [0.4] * 3  # the countdown goes on
        + [0.6]  # window 53 cancels it
        + [0.3] * 10  # windows 54-63: 10 windows = silence_ms, the turn ends at window 64's start
        + [0.1] * 6
    )
    settings = TurnDetection(min_speech_ms=100, silence_ms=320, prefix_ms=0)
    session = ScriptedSession(probs)
    det = SileroTurnDetector(16000, settings, session=session)
    det.spans = []
    pcm = (np.arange(len(probs) * 512) % 997).astype("<i2").tobytes()  # distinct bytes to locate cuts
    turns = [t for i in range(0, len(pcm), 640) for t in det.push(pcm[i : i + 640])]
    assert len(turns) == 1 and not det.in_turn
    # Pre-roll counted from the window before the first speech window (prefix_ms=0 adds none).
    assert turns[0] == pcm[2 * 10 * 512 : 2 * 64 * 512]
    assert det.spans == [(11 * 512, 54 * 512)]
    # The model saw 64 samples of context before each window: the previous window's tail.
    assert (session.inputs[1][0, :64] == session.inputs[0][0, -64:]).all()
    assert (session.inputs[0][0, :64] == 0).all()
    # A higher threshold: the 0.6 windows are not speech at all.
    strict = SileroTurnDetector(16000, TurnDetection(threshold=0.7), session=ScriptedSession(probs))
    assert strict.push(pcm) == [] and strict.flush() is None
