"""``fastvoice web``: a page to talk to an agent from a browser.

    fastvoice web [--host 127.0.0.1] [--port 8080] [--agent MODULE:ATTR]
                  [--url REALTIME_URL | --openai | --offline]

Open the printed address, press Talk and speak. Where sessions go: ``--url`` a Realtime server,
``--openai`` OpenAI, ``--offline`` an in-process ``fastvoice serve`` on the offline engines; with no
flag, OpenAI when an API key is found, else offline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from fastvoice import realtime
from fastvoice.telephony.cli import load_agent, realtime_backend, run_until_stopped

DEFAULT_AGENT = realtime.Agent(
    name="Assistant", instructions="You are a helpful voice assistant. Keep answers short."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastvoice web",
        description="A page to talk to a realtime agent from a browser.",
        epilog="\n\n".join(__doc__.split("\n\n")[2:]).replace("``", "")
        + "\n\nBrowsers give the microphone to https:// pages (and http://localhost): behind a\n"
        "reverse proxy with TLS, pass its origin with --allow-origin if it differs from the Host.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks one)")
    p.add_argument("--agent", metavar="MODULE:ATTR", help="the realtime.Agent answering")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="REALTIME_URL", help="a Realtime server (ws:// or wss://)")
    where.add_argument("--openai", action="store_true", help="OpenAI (needs an API key)")
    where.add_argument("--offline", action="store_true", help="an in-process fastvoice serve")
    p.add_argument("--engines", choices=["local", "light"], default=None, help="offline engines")
    p.add_argument("--workflow", metavar="MODULE:ATTR", help="offline: the brain answering (default: echo)")
    p.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN", help="another page origin"
    )
    p.add_argument("--for", dest="seconds", type=float, default=None, metavar="SECONDS", help="stop after")
    return p


async def run(args: argparse.Namespace) -> int:
    from fastvoice.web import WebServer

    agent = load_agent(args.agent) if args.agent else DEFAULT_AGENT
    async with contextlib.AsyncExitStack() as stack:
        url, api_key, where = await realtime_backend(args, stack)
        web = WebServer(
            agent,
            url=url,
            api_key=api_key,
            host=args.host,
            port=args.port,
            allowed_origins=tuple(args.allow_origin),
        )
        await stack.enter_async_context(web)
        print(f"fastvoice web: agent {agent.name!r}, sessions on {where}", flush=True)
        print(f"  open {web.base_url}", flush=True)
        await run_until_stopped(args.seconds)
    return 0


def cli_main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parser().parse_args(argv)))
