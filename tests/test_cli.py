"""The README's main job: `fastvoice demo` runs offline and writes a 24 kHz WAV."""

import subprocess
import sys
import wave
from pathlib import Path

from fastvoice import audio, cli


def test_demo_writes_24k_wav_of_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "fastvoice", "demo", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resample" in proc.stdout and "wire" in proc.stdout
    src = audio.wav_decode(cli.sample_wav())
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        # Same duration as the input, within one 20 ms chunk.
        assert abs(w.getnframes() / 24000 - src.duration_s) < 0.02


def test_demo_reports_bad_input_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    proc = subprocess.run(
        [sys.executable, "-m", "fastvoice", "demo", str(bad), "-o", str(tmp_path / "o.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("fastvoice: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.wav").exists()
