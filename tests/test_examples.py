"""The realtime examples run as scripts, with no API key, against the offline ``fastvoice serve`` server
(their default) and against the tone-answering fake (``--fake``), and do what they say: the event flow on
stdout (tool calls, approval, handoff, transcripts) and a reply WAV that is real speech.

"Real speech" is checked independently of the server: the WAV is read with stdlib ``wave``, transcribed back
with the offline PocketSphinx STT (the replies end in "Have a wonderful day.", which it recognises reliably in
eSpeak's voice), and must not look like a tone (numpy: loudness varies between syllables, the spectral peak
moves with the voice, no single frequency holds the energy). The scripts run concurrently: their replies are
paced at real time, so they mostly wait.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NAMES = ("realtime_basic.py", "realtime_tools.py", "realtime_handoffs.py", "live_realtime_voice.py")
RATE = 24000

OFFLINE_LINES = {
    "realtime_basic.py": ["backend: offline", "assistant: You said: Please wish me a wonderful day."],
    "realtime_tools.py": [
        'tool start: get_weather {"city": "Lisbon"}',
        "tool end: get_weather -> It is sunny and 21 degrees in Lisbon.",
        "assistant: It is sunny and 21 degrees in Lisbon.",
        "approval required: book_table; approving",
        "tool end: book_table -> Booked Chez Nous for 2.",
        "client tool: get_time",
        "assistant: It is 12:00. Have a wonderful day.",
    ],
    "realtime_handoffs.py": [
        "handoff: Triage -> Billing",
        "Billing: Billing here. I will refund the double charge. Have a wonderful day.",
    ],
    "live_realtime_voice.py": ["backend: offline", "sent 2.78 s of 22050 Hz audio from sample.wav"],
}

FAKE_LINES = {
    "realtime_basic.py": (["assistant: Hello there!"], 500),
    "realtime_tools.py": (
        [
            "tool end: get_weather -> It is sunny and 21 degrees in Lisbon.",
            "approval required: book_table; approving",
            "tool end: book_table -> Booked Chez Nous for 2.",
            "client tool: get_time",
        ],
        900,
    ),
    "realtime_handoffs.py": (["handoff: Triage -> Billing", "Billing: Billing here, how can I help?"], 400),
    "live_realtime_voice.py": (
        ["sent 2.78 s of 22050 Hz audio", "user: Hi!", "assistant: Nice to hear you."],
        1000,
    ),
}


@dataclass
class Run:
    stdout: str
    stderr: str
    returncode: int
    wav: pathlib.Path


def launch(name: str, mode: str, tmp: pathlib.Path) -> tuple[subprocess.Popen[str], pathlib.Path]:
    out = tmp / f"{mode}-{name}.wav"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "CODEX_API_KEY")}
    env["CODEX_HOME"] = str(tmp)  # no auth.json there: with no flag the example must go offline
    args = [sys.executable, str(EXAMPLES / name), "--out", str(out)]
    if name == "live_realtime_voice.py":
        args.append("--no-device")
    if mode == "fake":
        args.append("--fake")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
    return proc, out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Run]]:
    """Every example in both modes, all started at once, each with a 60 s limit."""
    tmp = tmp_path_factory.mktemp("examples")
    started = {(n, m): launch(n, m, tmp) for n in NAMES for m in ("offline", "fake")}
    results: dict[tuple[str, str], Run] = {}
    try:
        for key, (proc, out) in started.items():
            stdout, stderr = proc.communicate(timeout=60)
            results[key] = Run(stdout, stderr, proc.returncode, out)
        yield results
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def read_wav(path: pathlib.Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def assert_speech_not_tone(x: np.ndarray) -> None:
    n = RATE // 50  # 20 ms frames
    frames = x[: len(x) // n * n].reshape(-1, n)
    level = np.sqrt((frames**2).mean(axis=1))
    assert np.sqrt((x**2).mean()) > 300, "reply is (nearly) silent"
    assert level.std() / level.mean() > 0.3, "loudness is flat, like a tone"
    voiced = frames[level > 0.1 * level.max()]
    peaks = {int(np.argmax(np.abs(np.fft.rfft(f * np.hanning(n))))) for f in voiced}
    assert len(peaks) >= 8, f"spectral peak stays on {sorted(peaks)}: a tone, not a voice"
    power = np.abs(np.fft.rfft(x)) ** 2
    assert np.sort(power)[-20:].sum() / power.sum() < 0.5, "a few frequencies hold the energy: a tone"


def transcribe(path: pathlib.Path) -> str:
    from fastvoice.voice import AudioInput, STTSettings
    from fastvoice.voice.providers.local import LocalSTTModel

    return asyncio.run(LocalSTTModel().transcribe(AudioInput(path.read_bytes()), STTSettings()))


def written_ms(stdout: str) -> int:
    found = re.search(r"wrote (\d+) ms of reply audio", stdout)
    assert found, stdout
    return int(found.group(1))


@pytest.mark.parametrize("name", NAMES)
def test_example_offline_speaks(name: str, runs: dict[tuple[str, str], Run]) -> None:
    run = runs[(name, "offline")]
    assert run.returncode == 0, run.stderr
    assert "error:" not in run.stdout, run.stdout
    for line in OFFLINE_LINES[name]:
        assert line in run.stdout, run.stdout
    x = read_wav(run.wav)
    assert abs(len(x) / 24 - written_ms(run.stdout)) <= 1
    assert len(x) > RATE, "reply shorter than a second"
    assert_speech_not_tone(x)
    if name == "live_realtime_voice.py":
        # The echo brain repeats what the server's own STT heard in the bundled sample.
        heard = re.search(r"^user: (.+)$", run.stdout, re.M)
        assert heard, run.stdout
        assert f"assistant: You said: {heard.group(1)}" in run.stdout
    else:
        assert "wonderful" in transcribe(run.wav).split()


@pytest.mark.parametrize("name", NAMES)
def test_example_fake_plays_a_tone(name: str, runs: dict[tuple[str, str], Run]) -> None:
    run = runs[(name, "fake")]
    assert run.returncode == 0, run.stderr
    expected, ms = FAKE_LINES[name]
    for line in expected:
        assert line in run.stdout, run.stdout
    assert written_ms(run.stdout) == ms
    x = read_wav(run.wav)
    assert len(x) == 24 * ms
    assert np.abs(x).max() > 7000  # the scripted tone, not silence
    with pytest.raises(AssertionError):
        assert_speech_not_tone(x)  # and the speech check tells it apart from a voice
