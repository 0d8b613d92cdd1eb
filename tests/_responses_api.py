"""What the ``/v1/responses`` tests share: a tool-calling brain, strict validation of every body and event
against the ``openai`` package's types (the member model picked by ``type``, unknown fields rejected at any
depth, no type coercion), and an SSE parser."""

from __future__ import annotations

import functools
import json
from typing import Any

import aiohttp
import pydantic
from fastvoice.serve import BrainReply, FunctionCall, RealtimeServer, TurnContext
from fastvoice.testing.validation import union_members

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class WeatherBrain:
    """Calls ``get_weather`` when asked about the weather and offered the tool, reads a tool's output
    back, and otherwise says what it saw (instructions, last user text, how many items, which turn of its
    conversation: one instance per conversation)."""

    def __init__(self) -> None:
        self.turns = 0
        self.seen: list[TurnContext] = []

    async def respond(self, turn: TurnContext) -> BrainReply:
        self.turns += 1
        self.seen.append(turn)
        output = turn.pending_tool_output()
        if output is not None:
            return BrainReply(text=f"The weather: {output}")
        text = turn.last_user_text()
        if "get_weather" in turn.tool_names and "weather" in text.lower():
            cities = [w.strip("?.!,") for w in text.split()[1:] if w[:1].isupper()] or ["Paris"]
            return BrainReply(
                text="Let me check.", calls=[FunctionCall("get_weather", {"city": c}) for c in cities]
            )
        return BrainReply(text=f"[{turn.instructions}] {text} (turn {self.turns}, {len(turn.items)} items)")


# ---- strict validation against the openai types


@functools.cache
def _event_models() -> dict[str, type[pydantic.BaseModel]]:
    from openai.types.responses import ResponseStreamEvent

    return union_members(ResponseStreamEvent)


def _extra(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}.{k}" for k in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _extra(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += _extra(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            found += _extra(v, f"{path}.{k}")
    return found


def strict(model: type[pydantic.BaseModel], data: Any) -> Any:
    parsed = model.model_validate(data, strict=True)
    assert _extra(parsed) == [], f"unknown fields in a {model.__name__}: {_extra(parsed)}"
    return parsed


def check_response(data: Any) -> Any:
    from openai.types.responses import Response

    return strict(Response, data)


def check_event(event: dict[str, Any]) -> Any:
    model = _event_models().get(event.get("type", ""))
    assert model is not None, f"not a ResponseStreamEvent type: {event.get('type')}"
    return strict(model, event)


def check_error(status: int, body: Any, expected: int = 400) -> dict[str, Any]:
    from openai.types import ErrorObject

    assert status == expected, (status, body)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    strict(ErrorObject, body["error"])
    error: dict[str, Any] = body["error"]
    return error


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE blocks parsed by hand: each has an ``event:`` line naming the type its JSON ``data`` carries."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


async def post(http: aiohttp.ClientSession, srv: RealtimeServer, body: Any) -> tuple[int, Any]:
    """POST a JSON body; the parsed JSON (non-streamed) or the validated SSE events (streamed)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with http.post(srv.base_url + "/responses", data=data, headers=headers) as r:
        if r.content_type == "text/event-stream":
            assert r.status == 200
            return r.status, [check_event(e) and e for e in parse_sse(await r.text())]
        return r.status, await r.json()
