"""`fastvoice serve --workers N`: N processes on one port (SO_REUSEPORT), supervised. Real processes, real
sockets: which worker answered is what its brain says (its PID)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from fastvoice.serve.workers import worker_argv
from fastvoice.testing import validate_server_event

BRAIN = """
import os

def whoami(text):
    return f"worker {os.getpid()}"
"""


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Served:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        (tmp_path / "whoami_brain.py").write_text(BRAIN)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fastvoice.serve",
                "--port",
                "0",
                "--no-warm",
                "--engines",
                "light",
                "--workflow",
                "whoami_brain:whoami",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        assert "listening on ws://127.0.0.1:" in self.line, (self.line, self.stop())
        self.url = self.line.split("listening on ")[1].split()[0]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _out, err = self.proc.communicate(timeout=20)
        return err


async def _who(url: str, http: aiohttp.ClientSession) -> int:
    """Ask the server (a text-only turn) which process answers this connection."""
    async with http.ws_connect(url) as ws:
        await ws.send_str(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "hi"}],
                    },
                }
            )
        )
        await ws.send_str(
            json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}})
        )
        while True:
            event = json.loads((await ws.receive(timeout=20)).data)
            validate_server_event(event)
            if event["type"] == "response.output_text.done":
                return int(event["text"].split()[-1].rstrip("."))


def test_two_workers_share_the_port_and_both_answer(tmp_path: Path) -> None:
    served = Served(tmp_path, "--workers", "2")
    try:
        assert "(2 workers;" in served.line and "http://127.0.0.1:" in served.line
        workers = _children(served.proc.pid)
        assert len(workers) == 2

        async def ask() -> list[int]:
            async with aiohttp.ClientSession() as http:
                # The kernel spreads connections by their addresses: 16 land on one worker with p = 2^-15.
                return list(await asyncio.gather(*(_who(served.url, http) for _ in range(16))))

        pids = asyncio.run(ask())
        assert set(pids) == workers, (pids, workers)
    finally:
        err = served.stop()
    assert "Traceback" not in err, err
    assert not any(_alive(p) for p in workers)  # SIGTERM to the supervisor stopped every worker


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(tmp_path: Path) -> None:
    served = Served(tmp_path, "--workers", "2")
    try:
        before = _children(served.proc.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        # Connections the kernel had already queued at the victim are reset with it (clients retry);
        # once it is gone, its socket has left the port's group.
        deadline = time.monotonic() + 10
        while _alive(victim):
            assert time.monotonic() < deadline
            time.sleep(0.02)

        async def ask_while_down() -> set[int]:
            async with aiohttp.ClientSession() as http:
                return set(await asyncio.gather(*(_who(served.url, http) for _ in range(6))))

        # The survivor takes every new connection meanwhile (the dead worker's socket is gone with it).
        assert asyncio.run(ask_while_down()) <= before - {victim}
        deadline = time.monotonic() + 60
        while len(_children(served.proc.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        replaced = _children(served.proc.pid) - before
        assert len(replaced) == 1
    finally:
        err = served.stop()
    assert "worker 0 exited" in err or "worker 1 exited" in err, err


def test_one_worker_runs_in_process_and_bad_counts_are_refused(tmp_path: Path) -> None:
    served = Served(tmp_path, "--workers", "1")
    try:
        assert "workers" not in served.line
        assert _children(served.proc.pid) == set()

        async def ask() -> int:
            async with aiohttp.ClientSession() as http:
                return await _who(served.url, http)

        assert asyncio.run(ask()) == served.proc.pid
    finally:
        served.stop()
    bad = subprocess.run(
        [sys.executable, "-m", "fastvoice.serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--workers must be at least 1" in bad.stderr


def test_worker_command_lines_drop_the_supervisors_port_and_count() -> None:
    assert worker_argv(["--port", "0", "--workers", "4", "--engines", "light"], 8765) == [
        "--engines",
        "light",
        "--workers",
        "1",
        "--reuse-port",
        "--port",
        "8765",
    ]
    assert worker_argv(["--workers=3", "--port=9", "-v"], 1234) == [
        "-v",
        "--workers",
        "1",
        "--reuse-port",
        "--port",
        "1234",
    ]


def test_help_says_how_to_run_behind_a_load_balancer() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fastvoice.serve", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    flat = " ".join(out.split())
    assert "--workers N" in flat and "load balancer" in flat and "GET /v1/models" in flat


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if not hasattr(__import__("socket"), "SO_REUSEPORT"):
        pytest.skip("SO_REUSEPORT is not available on this platform")
