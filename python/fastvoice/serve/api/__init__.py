"""OpenAI's HTTP audio stack, served offline beside the Realtime endpoint.

``/v1/audio/transcriptions`` and ``/v1/audio/speech`` (:mod:`.audio`) run on the same engines as the realtime
sessions; ``/v1/responses`` (:mod:`.responses`) is answered by the same brain; ``/v1/models`` lists what is
served. Every response has the shape the ``openai`` package's types accept; every error is OpenAI's
``{"error": {"message", "type", "param", "code"}}`` with OpenAI's status code, including for unknown routes,
wrong methods and oversized bodies (:func:`errors_middleware`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fastvoice.serve.access import Access, http_error
from fastvoice.serve.engines import Engines

__all__ = ["MAX_BODY_BYTES", "ApiContext", "add_routes", "errors_middleware"]

logger = logging.getLogger("fastvoice.serve")

MAX_BODY_BYTES = 25 * 1024 * 1024 + 64 * 1024  # OpenAI's 25 MB upload limit, plus the multipart framing

#: what ``GET /v1/models`` lists: every name is served by the same offline engines.
MODELS = (
    "gpt-realtime",
    "gpt-4o-realtime-preview",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "whisper-1",
    "gpt-4o-mini-tts",
    "tts-1",
    "tts-1-hd",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4o",
    "gpt-4o-mini",
)


@dataclass(slots=True)
class ApiContext:
    """What the HTTP endpoints share with the realtime sessions of one server."""

    engines: Engines
    new_brain: Callable[[], Any]
    access: Access
    created: int = field(default_factory=lambda: int(time.time()))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> web.Response:
    """A 400 ``invalid_request_error`` naming the parameter at fault, as OpenAI answers bad requests."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return web.json_response(body, status=status)


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event, as OpenAI's audio endpoints frame them (``data:`` only)."""
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


async def end_stream_with_error(resp: web.StreamResponse, message: str) -> web.StreamResponse:
    """After the headers are out, a failure can only be the stream's last event, as OpenAI's streams end."""
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    await resp.write(sse({"type": "error", "error": error}))
    await resp.write_eof()
    return resp


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """OpenAI-shaped errors for whatever aiohttp would answer in its own words (404, 405, 413, 500)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return http_error(
                404, f"Invalid URL ({request.method} {request.path})", type="invalid_request_error", code=None
            )
        if exc.status == 405:
            return http_error(
                405,
                f"Method {request.method} is not allowed for {request.path}",
                type="invalid_request_error",
                code=None,
            )
        if exc.status == 413:
            return http_error(
                413,
                f"The request body is too large: at most {MAX_BODY_BYTES // (1024 * 1024)} MB is accepted.",
                type="invalid_request_error",
                code="request_too_large",
            )
        return http_error(exc.status, exc.reason, type="invalid_request_error", code=None)
    except (ConnectionResetError, OSError) as exc:
        logger.debug("client went away during %s %s: %s", request.method, request.path, exc)
        raise
    except Exception:
        logger.exception("internal error serving %s %s", request.method, request.path)
        return http_error(
            500, "The server had an error processing your request.", type="server_error", code=None
        )


def guarded(ctx: ApiContext, handler: Handler) -> Handler:
    """``handler`` behind the server's access checks (API key, browser origin)."""

    async def run(request: web.Request) -> web.StreamResponse:
        refusal = ctx.access.refusal(request.headers)
        if refusal is not None:
            logger.info(
                "refused %s %s from %s (HTTP %d)",
                request.method,
                request.path,
                request.remote,
                refusal.status,
            )
            return refusal
        return await handler(request)

    return run


async def _models(ctx: ApiContext, request: web.Request) -> web.Response:
    data = [{"id": m, "object": "model", "created": ctx.created, "owned_by": "fastvoice"} for m in MODELS]
    return web.json_response({"object": "list", "data": data})


async def _model(ctx: ApiContext, request: web.Request) -> web.Response:
    name = request.match_info["model"]
    if name not in MODELS:
        return http_error(
            404,
            f"The model '{name[:200]}' does not exist",
            type="invalid_request_error",
            code="model_not_found",
        )
    return web.json_response({"id": name, "object": "model", "created": ctx.created, "owned_by": "fastvoice"})


def add_routes(app: web.Application, ctx: ApiContext) -> None:
    """Register the HTTP API on ``app`` (whose middlewares include :func:`errors_middleware`)."""
    from fastvoice.serve.api import audio, responses

    def bind(fn: Callable[[ApiContext, web.Request], Awaitable[web.StreamResponse]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await fn(ctx, request)

        return guarded(ctx, handler)

    app.router.add_get("/v1/models", bind(_models))
    app.router.add_get("/v1/models/{model}", bind(_model))
    audio.add_routes(app, bind)
    responses.add_routes(app, bind)
