"""``POST /v1/responses`` answered by the server's brain, so Responses clients run offline.

The request (:mod:`._responses_input`) becomes a :class:`~fastvoice.serve.brain.TurnContext`: the input items
as Realtime GA items after those of the ``previous_response_id`` chain, ``session`` with the request's
``instructions`` and function ``tools``, and the other parameters as ``response``. The brain's text becomes
an assistant message and its calls ``function_call`` items (ids ``msg_``/``fc_``/``call_``), answered as one
``Response`` object or, with ``stream: true``, as the service's SSE events in its order, numbered by
``sequence_number``. What a real model would not do is not done: with ``tool_choice: "none"`` the brain's
calls are dropped, with ``parallel_tool_calls: false`` only its first is kept, and past
``max_output_tokens`` the text is cut and the response is ``incomplete``. ``usage`` is an estimate at 4
characters a token (instructions, tool definitions and the whole conversation in, text and calls out), the
rate :func:`fastvoice.serve.events.usage` uses for realtime sessions.

Responses are kept in memory unless ``store: false``: the last :data:`MAX_STORED` (and at most
:data:`MAX_STORED_CHARS` of conversation, counting each response's whole history), least recently used
first out, for ``previous_response_id`` and ``GET``/``DELETE /v1/responses/{id}``. A conversation continued
by id keeps its brain, so a brain class (one instance per conversation) can hold state across turns.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fastvoice.serve.access import http_error
from fastvoice.serve.api import ApiContext, invalid
from fastvoice.serve.api._responses_input import (
    BadRequest,
    ResponsesRequest,
    check_tool_pairs,
    parse_request,
    realtime_tool,
)
from fastvoice.serve.brain import BrainReply, FunctionCall, TurnContext, item_text
from fastvoice.serve.events import new_id, shown

__all__ = ["MAX_STORED", "MAX_STORED_CHARS", "ResponseStore", "add_routes"]

logger = logging.getLogger("fastvoice.serve")

MAX_STORED = 1000
"""Responses kept for ``previous_response_id`` and ``GET /v1/responses/{id}``."""
MAX_STORED_CHARS = 64 * 1024 * 1024
"""Conversation text kept, summed over the stored responses' whole histories (an upper bound on memory)."""

CHARS_PER_TOKEN = 4
_ARGUMENTS_CHUNK = 16  # characters per function_call_arguments.delta, as a model streams them in pieces


@dataclass(slots=True)
class Stored:
    """One stored response: the object as sent, the GA items it added (its input, then its output), the
    response it continued, and its conversation's brain."""

    response: dict[str, Any]
    items: list[dict[str, Any]]
    parent: Stored | None
    brain: Any
    chars: int  # this response's whole history, for the store's budget

    def context(self) -> list[dict[str, Any]]:
        """The conversation up to and including this response, oldest item first (copies)."""
        chain: list[list[dict[str, Any]]] = []
        node: Stored | None = self
        while node is not None:
            chain.append(node.items)
            node = node.parent
        return [copy.deepcopy(item) for items in reversed(chain) for item in items]


class ResponseStore:
    """Stored responses by id, least recently used evicted first. An evicted response's items live on in
    the responses that continued it (they hold it as ``parent``), which is why each is charged its whole
    history: the charge bounds the memory actually held."""

    def __init__(self, max_responses: int = MAX_STORED, max_chars: int = MAX_STORED_CHARS) -> None:
        self.max_responses, self.max_chars = max_responses, max_chars
        self._entries: OrderedDict[str, Stored] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, response_id: str) -> Stored | None:
        entry = self._entries.get(response_id)
        if entry is not None:
            self._entries.move_to_end(response_id)
        return entry

    def put(self, entry: Stored) -> None:
        self._entries[entry.response["id"]] = entry
        self._chars += entry.chars
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_responses or self._chars > self.max_chars
        ):
            _, old = self._entries.popitem(last=False)
            self._chars -= old.chars

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        self._chars -= entry.chars
        return True


def add_routes(app: web.Application, bind: Callable[[Any], Any]) -> None:
    """Register this module's endpoints; ``bind(fn)`` wraps ``fn(ctx, request)`` as a guarded handler."""
    store = ResponseStore()

    async def create(ctx: ApiContext, request: web.Request) -> web.StreamResponse:
        return await _create(ctx, store, request)

    async def retrieve(ctx: ApiContext, request: web.Request) -> web.StreamResponse:
        entry = store.get(request.match_info["response_id"])
        if entry is None:
            return _not_found(request.match_info["response_id"])
        return web.json_response(entry.response)

    async def delete(ctx: ApiContext, request: web.Request) -> web.StreamResponse:
        response_id = request.match_info["response_id"]
        if not store.delete(response_id):
            return _not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})

    app.router.add_post("/v1/responses", bind(create))
    app.router.add_get("/v1/responses/{response_id}", bind(retrieve))
    app.router.add_delete("/v1/responses/{response_id}", bind(delete))


def _not_found(response_id: str) -> web.Response:
    return invalid(f"Response with id '{shown(response_id)}' not found.", "response_id", None, status=404)


# ---- one response


class _Run:
    """What one request computes: the Response object, its output items and the events that stream it."""

    def __init__(self, req: ResponsesRequest, context: list[dict[str, Any]]) -> None:
        self.req = req
        self.context = context
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []
        self.status = "in_progress"
        self.usage: dict[str, Any] | None = None

    def response(self, status: str | None = None, **extra: Any) -> dict[str, Any]:
        """The Response object as it stands (``status`` and ``extra`` fields override)."""
        body = self.req.params
        text = dict(body.get("text") or {})
        text.setdefault("format", {"type": "text"})
        text.setdefault("verbosity", "medium")
        status = status or self.status
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None,
            "incomplete_details": None,
            "instructions": self.req.instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.req.model,
            "output": copy.deepcopy(self.output),
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "previous_response_id": self.req.previous_response_id,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "temperature": body.get("temperature", 1.0),
            "text": text,
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": [_echo_tool(t) for t in self.req.tools],
            "top_logprobs": body.get("top_logprobs") or 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": copy.deepcopy(self.usage),
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
            **extra,
        }

    async def answer(self, brain: Any) -> None:
        """Ask the brain and lay out its reply as output items (any exception is the brain's failure)."""
        req = self.req
        session = {
            "type": "realtime",
            "instructions": req.instructions or "",
            "tools": [realtime_tool(t) for t in req.tools],
            "tool_choice": req.params.get("tool_choice") or "auto",
            "output_modalities": ["text"],
        }
        turn = TurnContext(copy.deepcopy(self.context), session, req.brain_params())
        reply = await brain.respond(turn)
        if not isinstance(reply, BrainReply):
            raise TypeError(f"brain.respond() must return a BrainReply, got {type(reply).__name__}")
        calls = list(reply.calls)
        for call in calls:
            if not isinstance(call, FunctionCall):
                raise TypeError(f"BrainReply.calls must hold FunctionCall objects, got {type(call).__name__}")
        if req.params.get("tool_choice") == "none":
            calls = []
        elif req.params.get("parallel_tool_calls") is False:
            calls = calls[:1]
        text, budget = reply.text, _budget(req.params.get("max_output_tokens"))
        if budget is not None and _reply_chars(text, calls) > budget:
            text, calls = _cut(text, budget), []
            self.status = "incomplete"
        if text:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            done = "incomplete" if self.status == "incomplete" else "completed"
            self.output.append(
                {
                    "id": new_id("msg"),
                    "type": "message",
                    "status": done,
                    "role": "assistant",
                    "content": [part],
                }
            )
        for call in calls:
            self.output.append(_call_item(call))
        if self.status != "incomplete":
            self.status = "completed"
        in_chars = len(req.instructions or "") + len(json.dumps(req.tools)) + _items_chars(self.context)
        self.usage = _usage(in_chars, _reply_chars(text, calls))

    def final(self) -> dict[str, Any]:
        if self.status == "incomplete":
            return self.response(incomplete_details={"reason": "max_output_tokens"})
        return self.response()

    def ga_items(self) -> list[dict[str, Any]]:
        """The output as GA conversation items, for the stored history."""
        items = []
        for item in self.output:
            if item["type"] == "message":
                text = item["content"][0]["text"]
                content = [{"type": "output_text", "text": text}]
                items.append({**item, "status": "completed", "content": content})
            else:
                items.append({k: item[k] for k in ("type", "id", "status", "call_id", "name", "arguments")})
        return items

    def output_events(self) -> Iterator[dict[str, Any]]:
        """The events streaming the output items, without ``sequence_number``."""
        for index, item in enumerate(self.output):
            if item["type"] == "message":
                yield from _message_events(index, item)
            else:
                yield from _call_events(index, item)


def _message_events(index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index, "content_index": 0}
    text = item["content"][0]["text"]
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "status": "in_progress", "content": []},
    }
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield {"type": "response.content_part.added", **base, "part": empty}
    for k, word in enumerate(text.split(" ")):  # word by word; the pieces join back to the exact text
        delta = word if k == 0 else " " + word
        if delta:
            yield {"type": "response.output_text.delta", **base, "delta": delta, "logprobs": []}
    yield {"type": "response.output_text.done", **base, "text": text, "logprobs": []}
    yield {"type": "response.content_part.done", **base, "part": copy.deepcopy(item["content"][0])}
    yield {"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)}


def _call_events(index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    args = item["arguments"]
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "status": "in_progress", "arguments": ""},
    }
    base = {"item_id": item["id"], "output_index": index}
    for start in range(0, len(args), _ARGUMENTS_CHUNK):
        yield {
            "type": "response.function_call_arguments.delta",
            **base,
            "delta": args[start : start + _ARGUMENTS_CHUNK],
        }
    yield {"type": "response.function_call_arguments.done", **base, "arguments": args}
    yield {"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)}


def _call_item(call: FunctionCall) -> dict[str, Any]:
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": "completed",
        "call_id": new_id("call"),
        "name": call.name,
        "arguments": call.arguments_json(),
    }


def _echo_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def _budget(max_output_tokens: Any) -> int | None:
    return None if max_output_tokens is None else int(max_output_tokens) * CHARS_PER_TOKEN


def _cut(text: str, budget: int) -> str:
    """``text`` cut to at most ``budget`` characters, at a word boundary when there is one."""
    if len(text) <= budget:
        return text
    head = text[:budget]
    return head.rsplit(" ", 1)[0] if " " in head else head


def _reply_chars(text: str, calls: Sequence[FunctionCall]) -> int:
    return len(text) + sum(len(c.name) + len(c.arguments_json()) for c in calls)


def _items_chars(items: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for item in items:
        if item.get("type") == "message":
            total += len(item_text(item))
        elif item.get("type") == "function_call":
            total += len(str(item.get("name", ""))) + len(str(item.get("arguments", "")))
        else:
            total += len(str(item.get("output", "")))
    return total


def _usage(input_chars: int, output_chars: int) -> dict[str, Any]:
    """Token counts estimated at :data:`CHARS_PER_TOKEN` characters a token, rounded up."""
    tokens_in = -(-input_chars // CHARS_PER_TOKEN)
    tokens_out = -(-output_chars // CHARS_PER_TOKEN)
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens_in + tokens_out,
    }


# ---- the endpoint


async def _create(ctx: ApiContext, store: ResponseStore, request: web.Request) -> web.StreamResponse:
    try:
        req = parse_request(await request.read())
        parent = None
        if req.previous_response_id is not None:
            parent = store.get(req.previous_response_id)
            if parent is None:
                raise BadRequest(
                    f"Previous response with id '{shown(req.previous_response_id)}' not found.",
                    "previous_response_id",
                    "previous_response_not_found",
                )
        context = (parent.context() if parent is not None else []) + req.items
        check_tool_pairs(context)
    except BadRequest as exc:
        return invalid(exc.message, exc.param, exc.code, exc.status)
    brain = parent.brain if parent is not None else ctx.new_brain()
    run = _Run(req, context)
    headers = {"x-request-id": new_id("req")}
    if not req.stream:
        try:
            await run.answer(brain)
        except Exception:
            logger.exception("the brain failed to answer response %s", run.id)
            return http_error(
                500, "The server had an error processing your request.", type="server_error", code=None
            )
        _keep(store, run, parent, brain)
        return web.json_response(run.final(), headers=headers)
    stream = _EventStream(request, headers, run.id)
    await stream.open()
    await stream.send({"type": "response.created", "response": run.response()})
    await stream.send({"type": "response.in_progress", "response": run.response()})
    try:
        await run.answer(brain)
    except Exception as exc:
        logger.exception("the brain failed to answer response %s", run.id)
        error = {"code": "server_error", "message": f"The brain failed: {type(exc).__name__}"}
        await stream.send({"type": "response.failed", "response": run.response("failed", error=error)})
        return await stream.close()
    _keep(store, run, parent, brain)
    for event in run.output_events():
        await stream.send(event)
    kind = "response.incomplete" if run.status == "incomplete" else "response.completed"
    await stream.send({"type": kind, "response": run.final()})
    return await stream.close()


def _keep(store: ResponseStore, run: _Run, parent: Stored | None, brain: Any) -> None:
    if not run.req.store:
        return
    items = copy.deepcopy(run.req.items) + run.ga_items()
    chars = (parent.chars if parent is not None else 0) + _items_chars(items)
    store.put(Stored(run.final(), items, parent, brain, chars))


class _EventStream:
    """Server-sent events numbered by ``sequence_number``, as the service sends them. A client that goes
    away ends the stream quietly (what it asked for is still stored)."""

    def __init__(self, request: web.Request, headers: dict[str, str], response_id: str) -> None:
        self.request, self.response_id = request, response_id
        self.resp = web.StreamResponse(
            headers={
                **headers,
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        self.sequence = 0
        self.gone = False

    async def open(self) -> None:
        await self.resp.prepare(self.request)

    async def send(self, event: dict[str, Any]) -> None:
        if self.gone:
            return
        event = {"type": event["type"], "sequence_number": self.sequence, **event}
        self.sequence += 1
        try:
            await self.resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        except ConnectionResetError:
            logger.debug(
                "the client left the stream of %s", event.get("response", {}).get("id", "a response")
            )
            self.gone = True
            return
        await asyncio.sleep(0)  # let each event leave as it is made

    async def close(self) -> web.StreamResponse:
        if not self.gone:
            try:
                await self.resp.write_eof()
            except ConnectionResetError:
                pass
        return self.resp
