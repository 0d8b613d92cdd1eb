"""Every example runs as a script against the local fake server and produces what it says (stdout and WAV)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import wave

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

CASES = {
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


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "reply.wav"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "CODEX_API_KEY")}
    env["CODEX_HOME"] = str(tmp_path)  # no auth.json there: the example must pick the fake server
    args = [sys.executable, str(EXAMPLES / name), "--out", str(out)]
    if name == "live_realtime_voice.py":
        args.append("--no-device")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected, ms = CASES[name]
    for line in expected:
        assert line in proc.stdout, proc.stdout
    assert f"wrote {ms} ms of reply audio" in proc.stdout
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert w.getnframes() == 24 * ms
        assert any(w.readframes(w.getnframes()))  # not silence
