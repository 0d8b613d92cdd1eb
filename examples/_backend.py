"""Where the realtime examples send their session: the flags and the rule they share.

An explicit flag wins (``--offline`` an in-process ``fastvoice serve``, ``--url`` a running one,
``--openai`` OpenAI, ``--fake`` the ``FakeRealtimeServer`` test double); with no flag, a found API
key means OpenAI and no key means the offline server.
"""

from __future__ import annotations

import argparse

from fastvoice import realtime


def choose_backend(args: argparse.Namespace) -> str:
    """Explicit flags win; otherwise OpenAI when a key is found, else the offline server."""
    if args.fake:
        return "fake"
    if args.url:
        return "url"
    if args.offline:
        return "offline"
    if args.openai or realtime.resolve_api_key() is not None:
        return "openai"
    return "offline"


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--offline", action="store_true", help="in-process fastvoice serve, even if a key is set"
    )
    group.add_argument(
        "--url", metavar="WS_URL", help="a running 'fastvoice serve' (ws://127.0.0.1:8765/v1/realtime)"
    )
    group.add_argument("--openai", action="store_true", help="OpenAI (needs an API key)")
    group.add_argument("--fake", action="store_true", help="the FakeRealtimeServer test double")
