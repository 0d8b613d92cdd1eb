"""``fastvoice serve --workers N``: N server processes on one port, supervised by the process you started.

Each worker is a whole ``fastvoice serve`` (its own event loop, its own speech models) listening with
``SO_REUSEPORT``, so the kernel spreads new connections over the workers and one machine serves on every
core. A realtime session is one WebSocket connection, so it stays in the worker that accepted it, and an
HTTP request is answered where it lands: nothing is shared between workers, and nothing needs to be.

The supervisor starts the workers, prints one ``listening on`` line when all of them are ready, restarts a
worker that dies (at most once every few seconds per worker), and on SIGTERM or Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from fastvoice._cpus import usable_cpus

__all__ = ["default_workers", "supervise", "worker_argv"]

READY_TIMEOUT_S = 600.0  # the first start loads the speech models, which can take a while on a cold disk
RESTART_EVERY_S = 5.0
STOP_GRACE_S = 10.0


def default_workers() -> int:
    """One per core this process may run on."""
    return usable_cpus()


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """One worker's command line: ``argv`` without ``--workers``/``--port``, listening on ``port``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--workers", "--port"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return [*out, "--workers", "1", "--reuse-port", "--port", str(port)]


def _reserve(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: it turns port 0 into a real port and keeps the port ours
    while the workers start (a socket that does not listen is given no connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class _Worker:
    def __init__(self, slot: int, argv: list[str]) -> None:
        self.slot = slot
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FASTVOICE_SERVE_WORKER": str(self.slot)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastvoice.serve", *self.argv],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops the workers in order
        )

    def wait_ready(self, deadline: float, stopping: threading.Event) -> str | None:
        """The worker's ``listening on`` line, or None if it exited, timed out or we are stopping first."""
        assert self.proc is not None and self.proc.stdout is not None
        found: list[str] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if "listening on" in line:
                    found.append(line)
                    break
                sys.stdout.write(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while reader.is_alive() and not stopping.is_set() and time.monotonic() < deadline:
            reader.join(0.25)
        if not found:
            return None
        self._relay()
        return found[0]

    def _relay(self) -> None:
        """Copy what the worker prints later (so its pipe never fills and blocks it)."""

        def copy() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()

        threading.Thread(target=copy, daemon=True).start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


def supervise(argv: Sequence[str], workers: int, host: str, port: int) -> int:
    """Run ``workers`` server processes on ``host:port`` until SIGTERM/SIGINT; returns the exit status."""
    if not reuse_port_supported():
        print("fastvoice serve: --workers needs SO_REUSEPORT, which this platform lacks", file=sys.stderr)
        return 2
    try:
        holder = _reserve(host, port)
    except OSError as exc:
        print(f"fastvoice serve: cannot bind {host}:{port}: {exc}", file=sys.stderr)
        return 1
    port = holder.getsockname()[1]
    pool = [_Worker(i, worker_argv(argv, port)) for i in range(workers)]
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for w in pool:
            w.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        lines = [w.wait_ready(deadline, stopping) for w in pool]
        if not all(lines) or stopping.is_set():
            failed = [w.slot for w, line in zip(pool, lines, strict=True) if not line]
            if failed:
                print(f"fastvoice serve: worker(s) {failed} did not start", file=sys.stderr)
            return 1 if failed else 0
        holder.close()
        url = str(lines[0]).split("listening on ", 1)[1].split()[0]
        http = url.replace("ws://", "http://", 1).removesuffix("/realtime")
        print(
            f"fastvoice serve: listening on {url} and {http} ({workers} workers; Ctrl-C to stop)", flush=True
        )
        while not stopping.wait(0.25):
            for w in pool:
                assert w.proc is not None
                code = w.proc.poll()
                if code is None or stopping.is_set():
                    continue
                wait = RESTART_EVERY_S - (time.monotonic() - w.started)
                if wait > 0:
                    continue  # it died young: restart it once the interval has passed
                print(f"fastvoice serve: worker {w.slot} exited ({code}); restarting it", file=sys.stderr)
                w.start()
                if not w.wait_ready(time.monotonic() + READY_TIMEOUT_S, stopping) and not stopping.is_set():
                    print(f"fastvoice serve: worker {w.slot} did not restart", file=sys.stderr)
        return 0
    finally:
        holder.close()
        for w in pool:
            w.stop()
        end = time.monotonic() + STOP_GRACE_S
        for w in pool:
            if w.proc is None:
                continue
            try:
                w.proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
