"""The voice examples run offline end to end (each in its own process, as a user would run it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

pytest.importorskip("pocketsphinx", reason="the [local] extra (pocketsphinx) is not installed")
pytest.importorskip("espeakng_loader", reason="the [local] extra (espeakng-loader) is not installed")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(tmp_path: Path, name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CODEX_API_KEY", "OPENAI_API_KEY")}
    env["CODEX_HOME"] = str(tmp_path)  # no auth.json: the offline providers are chosen
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return w.getnframes() / 24000


def test_voice_pipeline_example(tmp_path):
    out = run(tmp_path, "voice_pipeline.py")
    assert "turn_started" in out and "session_ended" in out and "error" not in out
    assert "heard: 'What is the weather like today?'" in out  # the bundled sample
    assert wav_seconds(tmp_path / "reply.wav") > 2.0


def test_voice_multi_turn_example(tmp_path):
    out = run(tmp_path, "voice_multi_turn.py")
    assert out.count("turn_started") == 3 and out.count("session_ended") == 1  # greeting + 2 turns
    # Piper's voice, heard back by Whisper, exactly (the example prints repr()s).
    assert re.search(r"'Have a wonderful day[.!]' -> 'Turn 1\. I heard: Have a wonderful day\.'", out), out
    assert re.search(r"'I like music[.!]' -> 'Turn 2\. I heard: I like music\.'", out), out
    assert wav_seconds(tmp_path / "multi_turn.wav") > 4.0
