"""examples/voice_with_agent.py run as a user would: offline, and against FakeOpenAIServer via
OPENAI_BASE_URL (a real server in this process, the example in a subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

from fastvoice.testing import FakeOpenAIServer, FakeResponse

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "voice_with_agent.py"


async def _run(tmp_path: Path, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("CODEX_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env["CODEX_HOME"] = str(tmp_path)  # no auth.json
    return env


async def test_example_offline(tmp_path):
    out = await _run(tmp_path, _env(tmp_path))
    assert "running offline" in out and "error" not in out
    assert "reply: 'It is sunny and 21 degrees in Paris.'" in out
    with wave.open(str(tmp_path / "agent_reply.wav")) as w:
        assert w.getframerate() == 24000 and w.getnframes() > 24000


async def test_example_with_openai_against_the_fake_server(tmp_path):
    key = "sk-example-0123456789abcdef"
    async with FakeOpenAIServer(api_key=key) as server:
        server.stt_texts = ["What is the weather in Tokyo?"]
        server.responses = [
            FakeResponse(tool_calls=[("get_weather", {"city": "Tokyo"})]),
            FakeResponse(text="It is sunny in Tokyo."),
        ]
        env = {**_env(tmp_path), "OPENAI_API_KEY": key, "OPENAI_BASE_URL": server.base_url}
        out = await _run(tmp_path, env)
        assert server.errors == []
    assert 'tool get_weather({"city": "Tokyo"}) -> \'sunny and 21 degrees in Tokyo\'' in out
    assert "reply: 'It is sunny in Tokyo.'" in out and "error" not in out
    with wave.open(str(tmp_path / "agent_reply.wav")) as w:
        assert w.getnframes() * 2 == len(server.speech_audio("It is sunny in Tokyo."))


class _WeatherBrain:
    """The "model" behind `fastvoice serve` here: it calls the request's get_weather tool for a weather
    question, then says what the tool answered."""

    async def respond(self, turn):  # type: ignore[no-untyped-def]
        from fastvoice.serve import BrainReply, FunctionCall

        output = turn.pending_tool_output()
        if output is not None:
            return BrainReply(text=f"It is {output}.")
        if "weather" in turn.last_user_text().lower() and "get_weather" in turn.tool_names:
            return BrainReply(calls=[FunctionCall("get_weather", {"city": "Paris"})])
        return BrainReply(text="I only know the weather.")


async def test_example_with_openai_providers_against_fastvoice_serve(tmp_path):
    """The same example, its OpenAI path (transcription, Responses with a tool call, speech) served
    offline by `fastvoice serve`: nothing changes but OPENAI_BASE_URL."""
    from fastvoice.serve import RealtimeServer

    async with RealtimeServer(workflow=_WeatherBrain()) as server:
        env = {**_env(tmp_path), "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        out = await _run(tmp_path, env)
        assert server.errors == []
    assert "running offline" not in out and "error" not in out, out
    assert "tool get_weather(" in out and "-> 'sunny and 21 degrees in Paris'" in out, out
    assert "reply: 'It is sunny and 21 degrees in Paris.'" in out, out
    assert "weather" in out.split("heard: ", 1)[1].split("\n", 1)[0].lower(), out
    with wave.open(str(tmp_path / "agent_reply.wav")) as w:
        assert w.getframerate() == 24000 and w.getnframes() > 24000  # over a second of speech
