"""`fastvoice serve` benchmarks: how many spoken sessions one server holds at real time, and how soon a reply
starts after the user stops talking.

The server runs in its own process (`python -m fastvoice.serve`), so its CPU time is read from
/proc/PID/stat without the clients' share. N clients in this process each
stream `voice_sample_24k.wav` ("Have a wonderful day.") in 20 ms appends at real time with 0.3 s of silence
before and 1 s after; the server's VAD ends the turn, the STT transcribes it, the echo brain answers, the TTS
speaks it, and the reply is paced at real time. Per run:

- `cpu_per_session_s`: server CPU seconds per session turn; `sessions_per_core`: seconds of session audio
  (input + reply) served per CPU-second. The CPU work of a turn does not depend on the pace, so this is how
  many sessions, each talking and listening back to back, one core keeps at real time;
- `first_audio_ms`: first `response.output_audio.delta` minus the moment the last chunk of speech was sent
  (includes the VAD's 200 ms silence hangover, STT, brain and the first TTS buffer); `after_stopped_ms`: the
  same from the `speech_stopped` event (STT + brain + TTS only);
- `transcript_ms`: the final transcript (`input_audio_transcription.completed`) minus `speech_stopped`;
  `partials`: transcription deltas that arrived before `speech_stopped`; `wer`: the final transcript's word
  error rate;
- `late_ms`: how far the reply's last delta arrived behind its real-time schedule (0: kept pace).

Competitors side by side: the default server (the neural engines, Whisper streamed with partials, Piper;
every sent event validated as a GA RealtimeServerEvent) against `--stream-decoders 0` (each turn
transcribed after it ends, as the voice pipeline does), `--engines light` (PocketSphinx streamed, eSpeak NG)
and, in the full run, `--lenient` (no validation). Smoke mode (the normal test run): 2 sessions, input and
reply at 4x real time. Full: FASTVOICE_BENCH_FULL=1 runs 1, 4 and 8 sessions at real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _data import data_path
from _speech import CLIPS, wer

FULL = os.environ.get("FASTVOICE_BENCH_FULL") == "1"
PACE = 1.0 if FULL else 4.0
COUNTS = [1, 4, 8] if FULL else [2]
CHUNK = 960  # 20 ms at 24 kHz PCM16
TICKS = os.sysconf("SC_CLK_TCK")
MODES = {
    "local": [],  # Whisper + Piper, strict validation, STT streamed for every speaker
    "local-batch-stt": ["--stream-decoders", "0"],
    "light": ["--engines", "light"],  # PocketSphinx (--stream-decoders = sessions) + eSpeak NG
    **({"lenient": ["--lenient"]} if FULL else {}),
}


def _speech() -> bytes:
    with wave.open(str(data_path("voice_sample_24k.wav"))) as w:
        return w.readframes(w.getnframes())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def spawn_server(
    args: list[str], *, merge_stderr: bool = True, cpus: set[int] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`python -m fastvoice.serve ARGS` in its own process, once it listens: (process, ws URL). Its stderr
    joins the stdout pipe, or (``merge_stderr=False``) stays this process's. ``cpus``: the only CPUs it
    (and its workers) may run on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastvoice.serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else None,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on " in line, line
    return proc, line.split("listening on ")[1].split()[0]


class ServerProcess:
    def __init__(self, mode: str, sessions: int) -> None:
        # One worker: its CPU time is this process's (bench_serve_workers.py measures --workers).
        args = ["--port", "0", "--workers", "1", "--pace", str(PACE)]
        if mode != "local-batch-stt":
            args += ["--stream-decoders", str(sessions)]
        self.proc, self.url = spawn_server(args + MODES[mode])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


async def _session(url: str, speech: bytes) -> dict[str, Any]:
    lead, tail = bytes(CHUNK * 15), bytes(CHUNK * 50)
    stream = lead + speech + tail
    end_of_speech = len(lead) + len(speech)
    out: dict[str, Any] = {"audio": 0, "transcript": ""}
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:

        async def send() -> None:
            t0 = time.monotonic()
            for k, i in enumerate(range(0, len(stream), CHUNK)):
                due = t0 + k * 0.02 / PACE
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                frame = {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(stream[i : i + CHUNK]).decode(),
                }
                await ws.send_str(json.dumps(frame))
                if i + CHUNK >= end_of_speech and "speech_end" not in out:
                    out["speech_end"] = time.monotonic()

        await ws.send_str(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                    },
                }
            )
        )
        sender = asyncio.create_task(send())
        async for msg in ws:
            event = json.loads(msg.data)
            kind = event["type"]
            now = time.monotonic()
            if kind == "input_audio_buffer.speech_stopped":
                out["stopped"] = now
            elif kind == "conversation.item.input_audio_transcription.delta" and "stopped" not in out:
                out["partials"] = out.get("partials", 0) + 1
            elif kind == "conversation.item.input_audio_transcription.completed":
                out["transcript"] = event["transcript"]
                out["transcribed"] = now
            elif kind == "response.output_audio.delta":
                out.setdefault("first_audio", now)
                out["last_audio"] = now
                out["audio"] += len(base64.b64decode(event["delta"]))
            elif kind == "error":
                raise AssertionError(event)
            elif kind == "response.done":
                assert event["response"]["status"] == "completed", event
                break
        await sender
    return out


def _run(mode: str, sessions: int, speech: bytes) -> dict[str, Any]:
    server = ServerProcess(mode, sessions)
    try:

        async def all_sessions(n: int) -> list[dict[str, Any]]:
            return await asyncio.gather(*(_session(server.url, speech) for _ in range(n)))

        asyncio.run(all_sessions(1))  # warm-up, not measured: first use of each code path and event model
        cpu0 = _cpu_s(server.proc.pid)
        results = asyncio.run(all_sessions(sessions))
        cpu = _cpu_s(server.proc.pid) - cpu0
    finally:
        server.close()
    for r in results:
        assert "wonderful day" in r["transcript"].lower(), r["transcript"]
        assert r["audio"] / 48000 > 0.8
    streamed_s = sum((len(speech) + CHUNK * 65) / 48000 + r["audio"] / 48000 for r in results)
    reply_s = statistics.median(r["audio"] / 48000 for r in results)
    return {
        "sessions": sessions,
        "pace": PACE,
        "cpu_per_session_s": round(cpu / sessions, 4),
        "sessions_per_core": round(streamed_s / max(cpu, 1e-3), 1),
        "first_audio_ms": round(
            statistics.median(r["first_audio"] - r["speech_end"] for r in results) * 1000, 1
        ),
        "after_stopped_ms": round(
            statistics.median(r["first_audio"] - r["stopped"] for r in results) * 1000, 1
        ),
        "transcript_ms": round(statistics.median(r["transcribed"] - r["stopped"] for r in results) * 1000, 1),
        "partials": statistics.median(r.get("partials", 0) for r in results),
        "wer": round(
            statistics.mean(wer(CLIPS["voice_sample_24k.wav"], r["transcript"]) for r in results), 3
        ),
        "late_ms": round(
            statistics.median(
                r["last_audio"] - r["first_audio"] - (r["audio"] / 48000 - 0.04) / PACE for r in results
            )
            * 1000,
            1,
        ),
        "reply_s": round(reply_s, 2),
    }


@pytest.mark.parametrize("sessions", COUNTS)
@pytest.mark.parametrize("mode", list(MODES))
def test_serve_sessions(benchmark: Any, mode: str, sessions: int) -> None:
    speech = _speech()
    benchmark.group = f"serve-{sessions}-sessions"
    info = benchmark.pedantic(_run, args=(mode, sessions, speech), rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    print(mode, info)
