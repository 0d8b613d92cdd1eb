"""OpenAI's HTTP audio endpoints, on the server's offline engines: ``POST /v1/audio/transcriptions``
(:mod:`.transcriptions`, uploads read by :mod:`._clip`) and ``POST /v1/audio/speech`` (:mod:`.speech`).

``/v1/audio/translations`` is not served: both recognisers are English models, so there is nothing to
translate from (it answers 404 like any unknown route).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from fastvoice.serve.api.speech import speech
from fastvoice.serve.api.transcriptions import transcriptions

__all__ = ["add_routes"]


def add_routes(app: web.Application, bind: Callable[[Any], Any]) -> None:
    """Register this module's endpoints; ``bind(fn)`` wraps ``fn(ctx, request)`` as a guarded handler."""
    app.router.add_post("/v1/audio/transcriptions", bind(transcriptions))
    app.router.add_post("/v1/audio/speech", bind(speech))
