"""``fastvoice phone``: serve phone calls to an agent.

    fastvoice phone [--host 127.0.0.1] [--port 8080] [--agent MODULE:ATTR]
                    [--url REALTIME_URL | --openai | --offline] [--public-url https://...]

Routes: ``POST /{twilio,telnyx,plivo}/voice`` (the call webhook: point the provider's number at it) and
the media WebSocket ``/{provider}/media`` the answer names. Where sessions go: ``--url`` a Realtime
server, ``--openai`` OpenAI, ``--offline`` an in-process ``fastvoice serve`` on the offline engines; with
no flag, OpenAI when an API key is found, else offline, so a simulated call works with nothing set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from fastvoice import realtime

#: The agent of ``fastvoice phone`` without ``--agent``.
DEFAULT_AGENT = realtime.Agent(
    name="Receptionist",
    instructions="You answer the phone for a small business. Greet the caller and keep answers short.",
)


def load_agent(spec: str) -> realtime.Agent:
    """Import ``module:attr`` (the module from the current directory too); ValueError says what is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--agent must look like module:attr, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, realtime.Agent):
        raise ValueError(f"{spec} is a {type(obj).__name__}, not a fastvoice.realtime.Agent")
    return obj


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastvoice phone",
        description="Serve phone calls (Twilio, Telnyx, Plivo media streams) to a realtime agent.",
        epilog="\n\n".join(__doc__.split("\n\n")[2:]).replace("``", "")
        + "\n\nProviders connect over wss://: terminate TLS in a reverse proxy in front (the guide's\n"
        "Telephony section shows one) and pass --public-url. With TWILIO_AUTH_TOKEN set, Twilio's\n"
        "request signatures are required.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks one)")
    p.add_argument(
        "--agent", metavar="MODULE:ATTR", help="the realtime.Agent answering (default: a receptionist)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="REALTIME_URL", help="a Realtime server (ws:// or wss://)")
    where.add_argument("--openai", action="store_true", help="OpenAI (needs an API key)")
    where.add_argument(
        "--offline", action="store_true", help="an in-process fastvoice serve, even with a key"
    )
    p.add_argument(
        "--engines", choices=["local", "light"], default=None, help="offline engines (default: local)"
    )
    p.add_argument("--workflow", metavar="MODULE:ATTR", help="offline: the brain answering (default: echo)")
    p.add_argument("--public-url", metavar="URL", help="how providers reach this server (https://host)")
    p.add_argument(
        "--trust-forwarded", action="store_true", help="take X-Forwarded-Proto/-Host from a reverse proxy"
    )
    p.add_argument(
        "--session-format",
        choices=["caller", "pcm16"],
        default="caller",
        help="session audio: the caller's G.711 law (no transcoding, default) or PCM16 at 24 kHz",
    )
    p.add_argument("--dtmf-as-text", action="store_true", help="also send typed digits to the model as text")
    p.add_argument("--no-greeting", action="store_true", help="wait for the caller to speak first")
    p.add_argument(
        "--for",
        dest="seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until interrupted)",
    )
    return p


async def realtime_backend(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack
) -> tuple[str | None, str | None, str]:
    """``(url, api_key, description)`` of where sessions go (``--url``/``--openai``/``--offline``, else
    OpenAI when a key is found, else an in-process ``fastvoice serve`` entered on ``stack``)."""
    key = realtime.resolve_api_key()
    if args.offline or not (args.url or args.openai or key is not None):
        from fastvoice.serve import RealtimeServer
        from fastvoice.serve.brain import load_brain

        workflow = load_brain(args.workflow) if args.workflow else None
        srv = await stack.enter_async_context(RealtimeServer(workflow=workflow, engines=args.engines))
        return srv.url, "offline", "offline (fastvoice serve in-process)"
    if args.url:
        # A local server may not check keys; OpenAI's URL would refuse a placeholder.
        return args.url, key or "unused", args.url
    return None, key, "OpenAI"


async def run_until_stopped(seconds: float | None) -> None:
    """Until SIGINT/SIGTERM, or ``seconds`` (``--for``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run(args: argparse.Namespace) -> int:
    from fastvoice.telephony.server import PhoneServer

    agent = load_agent(args.agent) if args.agent else DEFAULT_AGENT
    async with contextlib.AsyncExitStack() as stack:
        url, api_key, where = await realtime_backend(args, stack)
        phone = PhoneServer(
            agent,
            url=url,
            api_key=api_key,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            trust_forwarded=args.trust_forwarded,
            twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
            session_format=args.session_format,
            dtmf_as_text=args.dtmf_as_text,
            greet=not args.no_greeting,
        )
        await stack.enter_async_context(phone)
        print(f"fastvoice phone: agent {agent.name!r}, sessions on {where}", flush=True)
        for provider in ("twilio", "telnyx", "plivo"):
            print(f"  {provider}: webhook POST {phone.base_url}/{provider}/voice", flush=True)
        if phone.public_url is None and args.host in ("127.0.0.1", "localhost"):
            print(
                "  (only this machine can reach it: use --public-url behind a TLS proxy or tunnel)",
                flush=True,
            )
        await run_until_stopped(args.seconds)
    return 0


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run(args))
