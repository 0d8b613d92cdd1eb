"""``fastvoice serve``: an offline server that speaks the OpenAI Realtime protocol (GA events).

Realtime clients (fastvoice's own, openai-agents' ``RealtimeSession``, a user's app) run against it unchanged
except for the URL, with no key and no network: server VAD and PocketSphinx on the way in, a pluggable brain
(by default an echo ``voice.Workflow``) in the middle, eSpeak NG paced at real time on the way out::

    async with RealtimeServer(workflow=my_workflow) as srv:
        session = await realtime.start_session(agent, url=srv.url, api_key="offline")

Needs the ``testing`` and ``local`` extras (aiohttp, openai, pocketsphinx, espeakng-loader).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from fastvoice.serve.brain import Brain, BrainReply, FunctionCall, TurnContext, WorkflowBrain, load_brain
from fastvoice.serve.server import RealtimeServer
from fastvoice.serve.workers import default_workers, supervise

KEY_ENV = "FASTVOICE_SERVE_API_KEY"

__all__ = [
    "Brain",
    "BrainReply",
    "FunctionCall",
    "RealtimeServer",
    "TurnContext",
    "WorkflowBrain",
    "cli_main",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastvoice serve",
        description="Serve the OpenAI Realtime protocol offline (local STT, TTS, VAD).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    p.add_argument("--workflow", metavar="MODULE:ATTR", help="a voice.Workflow (or brain) to answer with")
    p.add_argument("--pace", type=float, default=1.0, help="audio pacing, x real time (0: unpaced)")
    p.add_argument(
        "--lenient", action="store_true", help="skip validating each sent event as a GA server event (faster)"
    )
    p.add_argument(
        "--engines",
        choices=["local", "light"],
        default=None,
        help="offline speech engines: local (Whisper + Piper, partial transcripts) or light (PocketSphinx + "
        "eSpeak NG, a smaller install); default: local when installed",
    )
    p.add_argument(
        "--stream-decoders",
        type=int,
        default=2,
        metavar="N",
        help="0: transcribe each turn after it ends; light engines: turns transcribed while spoken at once, "
        "~95 MB each (default 2)",
    )
    p.add_argument(
        "--no-warm", action="store_true", help="start at once; load speech models on the first turn"
    )
    access = p.add_argument_group(
        "access",
        "Upgrades whose Origin header is not loopback are refused (HTTP 403) unless allowed; clients "
        "without an Origin header (non-browser) pass. With a key, clients must send "
        "'Authorization: Bearer KEY' or the 'openai-insecure-api-key.KEY' subprotocol (HTTP 401 otherwise).",
    )
    access.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept WebSocket upgrades from this browser origin, exactly scheme://host[:port] "
        "(repeatable)",
    )
    access.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require this API key (default: ${KEY_ENV}, which other users cannot read from the process "
        "list; no key: fine on loopback only)",
    )
    limits = p.add_argument_group("limits")
    limits.add_argument(
        "--max-sessions",
        type=int,
        default=64,
        metavar="N",
        help="concurrent sessions; the next one gets HTTP 503 (default 64)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="close a session that sends no event for this long while nothing is playing (default 300; "
        "0: never)",
    )
    limits.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a TCP connection that has not completed its WebSocket upgrade by then (default 10)",
    )
    scale = p.add_argument_group(
        "workers",
        "--workers N runs N server processes on the port (SO_REUSEPORT: the kernel spreads new "
        "connections over them), each with its own speech models (warm: ~340 MB each with the local "
        "engines, ~440 MB light). A session or request stays in the worker that accepted its connection, "
        "so nothing is shared and limits are per worker. Behind a load balancer: point it at each "
        "machine's port (no stickiness needed beyond the connection; WebSocket upgrades must pass "
        "through), health-check GET /v1/models (200 when up), and keep its idle timeout above "
        "--idle-timeout.",
    )
    scale.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=f"server processes (default: one per core, {default_workers()} here)",
    )
    scale.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, to share the port with other processes you run yourself",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log every session")
    return p


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``fastvoice serve [--host H] [--port P] [--workflow module:attr]``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        workflow = load_brain(args.workflow) if args.workflow else None
        server = RealtimeServer(
            args.host,
            args.port,
            workflow,
            pace=args.pace,
            strict=not args.lenient,
            stream_decoders=args.stream_decoders,
            engines=args.engines,
            warm=not args.no_warm,
            api_key=args.api_key or os.environ.get(KEY_ENV) or None,
            allowed_origins=args.allow_origin,
            max_sessions=args.max_sessions,
            idle_timeout=args.idle_timeout or None,
            handshake_timeout=args.handshake_timeout,
            reuse_port=args.reuse_port,
        )
        workers = default_workers() if args.workers is None else args.workers
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
    except (ValueError, TypeError) as exc:
        print(f"fastvoice serve: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        return supervise(list(sys.argv[1:] if argv is None else argv), workers, args.host, args.port)

    async def main() -> None:
        await server.start()
        print(
            f"fastvoice serve: listening on {server.url} and {server.base_url} (Ctrl-C to stop)", flush=True
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"fastvoice serve: {exc}")
        return 1
    return 0
