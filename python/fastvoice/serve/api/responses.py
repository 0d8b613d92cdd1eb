"""Placeholder: filled in by issue 14."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web


def add_routes(app: web.Application, bind: Callable[[Any], Any]) -> None:
    """Register this module's endpoints; ``bind(fn)`` wraps ``fn(ctx, request)`` as a guarded handler."""
