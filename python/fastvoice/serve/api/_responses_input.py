"""A ``POST /v1/responses`` body, checked the way OpenAI checks it and turned into what a brain sees.

Checks follow the ``openai`` package's param types (``ResponseCreateParams`` and the input item and tool
types): unknown parameters, wrong types and missing required fields are refused with OpenAI's messages and
codes and the ``param`` at fault (``input[2].call_id``). What the offline server cannot honour is refused
by name rather than ignored (background responses, stored prompts, the Conversations API, hosted tools,
file inputs, item references); what only tunes a real model (``temperature``, ``reasoning``, ``include``,
``truncation``, ``text``, ``metadata``...) is accepted, echoed in the response and passed to the brain.

Input items become Realtime GA conversation items, the form :class:`~fastvoice.serve.brain.TurnContext`
gives a brain in a realtime session too: messages with ``input_text``/``output_text`` parts (``developer``
is the GA ``system`` role), ``function_call`` and ``function_call_output`` items.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from fastvoice.serve.events import new_id, shown
from fastvoice.testing.validation import materialize

__all__ = ["BadRequest", "ResponsesRequest", "check_tool_pairs", "parse_request", "realtime_tool"]

#: Parameters of a real client that the server cannot honour, and what to do instead.
REFUSED = {
    "conversation": "The Conversations API is not served offline: continue with previous_response_id, or "
    "send the whole history in input.",
    "prompt": "Stored prompts are not available offline: send instructions and input instead.",
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = ("user", "assistant", "system", "developer")
_STATUSES = ("in_progress", "completed", "incomplete")
#: The input item types served; anything else is refused naming these.
ITEM_TYPES = ("message", "function_call", "function_call_output")
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


class BadRequest(Exception):
    """A request OpenAI would refuse: ``message``, the ``param`` at fault, OpenAI's ``code``, ``status``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


@dataclass(slots=True)
class ResponsesRequest:
    """A checked request. ``params``: the parameters but ``input`` and ``tools``, as validated (keys the
    param types do not know dropped); ``items``: the new input as GA items; ``tools``: the function tools
    as sent (Responses shape, for the echo in the response)."""

    params: dict[str, Any]
    model: str
    stream: bool
    store: bool
    instructions: str | None
    tools: list[dict[str, Any]]
    items: list[dict[str, Any]]
    previous_response_id: str | None

    def brain_params(self) -> dict[str, Any]:
        """The request as :attr:`TurnContext.response` shows it: every parameter but ``input``, ``tools`` and
        ``instructions`` (those are in ``items`` and ``session``)."""
        return {k: v for k, v in self.params.items() if k != "instructions"}


def parse_request(raw: bytes) -> ResponsesRequest:
    """The checked request in ``raw`` (the HTTP body); raises :class:`BadRequest`."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload; "
            "send Content-Type: application/json with a JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, got {type(body).__name__}.")
    params = _check_params(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    params.update(model=body["model"], stream=stream is True)
    return ResponsesRequest(
        params=params,
        model=body["model"],
        stream=stream is True,
        store=params.get("store") is not False,
        instructions=params.get("instructions"),
        tools=_function_tools(body.get("tools")),
        items=_input_items(body["input"]),
        previous_response_id=body.get("previous_response_id"),
    )


# ---- top-level parameters


_OWN = frozenset({"input", "tools", "stream", "model"})  # checked by hand, with clearer errors


@functools.cache
def _params() -> tuple[pydantic.TypeAdapter[Any], frozenset[str]]:
    """A validator of the parameters not checked by hand, and the names of all parameters."""
    from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
    from typing_extensions import TypedDict

    hints = typing.get_type_hints(ResponseCreateParamsStreaming, include_extras=True)
    fields = {k: v for k, v in hints.items() if k not in _OWN}
    adapter = pydantic.TypeAdapter(TypedDict("_Params", fields, total=False))  # type: ignore[operator]
    return adapter, frozenset(hints)


def _check_params(body: dict[str, Any]) -> dict[str, Any]:
    adapter, names = _params()
    for key in body:
        if key not in names:
            raise unknown(shown(key))
    for key in ("model", "input"):
        if key not in body:
            raise missing(key)
    if not isinstance(body["model"], str) or not body["model"]:
        raise _invalid_type("model", "a non-empty string", body["model"])
    for key, why in REFUSED.items():
        if body.get(key) is not None:
            raise BadRequest(why, key, "unsupported_parameter")
    if body.get("background") is True:
        raise BadRequest(
            "Background responses are not supported by fastvoice serve: leave background unset (or false) "
            "and read the response from this request, streamed or not.",
            "background",
            "unsupported_value",
        )
    try:
        # strict: JSON gives every type exactly, and OpenAI refuses "20" for an integer as well
        params: dict[str, Any] = materialize(
            adapter.validate_python({k: v for k, v in body.items() if k not in _OWN}, strict=True)
        )
    except pydantic.ValidationError as exc:
        raise _from_pydantic(exc, "") from None
    limit = params.get("max_output_tokens")
    if limit is not None and limit < 16:
        raise BadRequest(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got "
            f"{limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    return params


_TAG = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _from_pydantic(exc: pydantic.ValidationError, prefix: str) -> BadRequest:
    """The most specific pydantic error as OpenAI's ``invalid_value``, its location as OpenAI writes it
    (``input[0].content``) without pydantic's union member tags."""
    errors = exc.errors(include_url=False)
    # Of a union, the members whose `type` literal did not match are not what the client meant.
    other = [e["loc"][:-1] for e in errors if e["type"] == "literal_error" and e["loc"][-1:] == ("type",)]
    meant = [e for e in errors if not any(e["loc"][: len(m)] == m for m in other)] or errors
    error = max(meant, key=lambda e: len(e["loc"]))
    param = prefix
    for part in error["loc"]:
        if isinstance(part, int):
            param += f"[{part}]"
        elif _TAG.match(part) and part not in _TYPE_TAGS:
            param += f".{part}" if param else part
    kind = "missing_required_parameter" if error["type"] == "missing" else "invalid_value"
    if kind == "missing_required_parameter":
        return missing(param)
    return BadRequest(f"Invalid '{param}': {error['msg']}.", param, kind)


def unknown(param: str) -> BadRequest:
    return BadRequest(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def missing(param: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _invalid_type(param: str, expected: str, value: Any) -> BadRequest:
    got = "null" if value is None else type(value).__name__
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param, "invalid_type"
    )


# ---- tools


@functools.cache
def _function_tool() -> tuple[pydantic.TypeAdapter[Any], frozenset[str]]:
    from openai.types.responses import FunctionToolParam

    keys = FunctionToolParam.__required_keys__ | FunctionToolParam.__optional_keys__
    return pydantic.TypeAdapter(FunctionToolParam), frozenset(keys)


def _function_tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_type("tools", "an array of tools", value)
    adapter, keys = _function_tool()
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid_type(where, "an object", tool)
        kind = tool.get("type")
        if kind != "function":
            raise BadRequest(
                f"Tool type {shown(kind)!r} is not supported by fastvoice serve: the brain calls function "
                'tools ({"type": "function", "name": ..., "parameters": ...}) only; hosted tools '
                "(web_search, file_search, code_interpreter, mcp, ...) need OpenAI.",
                f"{where}.type",
                "unsupported_value",
            )
        for key in tool:
            if key not in keys:
                raise unknown(f"{where}.{shown(key)}")
        # The API takes `strict` and `parameters` as optional although the param type marks them required.
        try:
            adapter.validate_python({"strict": None, "parameters": None, **tool}, strict=True)
        except pydantic.ValidationError as exc:
            raise _from_pydantic(exc, where) from None
        name = tool["name"]
        if not _TOOL_NAME.match(name):
            raise BadRequest(
                f"Invalid '{where}.name': string does not match pattern. Expected a string that matches the "
                "pattern '^[a-zA-Z0-9_-]+$' (at most 64 characters).",
                f"{where}.name",
                "invalid_value",
            )
        if name in names:
            raise BadRequest(
                f"Duplicate tool name {name!r} in tools: each function needs a distinct name.",
                f"{where}.name",
                "invalid_value",
            )
        names.add(name)
        tools.append(tool)
    return tools


def realtime_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses function tool as a Realtime GA session tool (what a brain sees in ``session.tools``)."""
    out: dict[str, Any] = {"type": "function", "name": tool["name"]}
    if tool.get("description") is not None:
        out["description"] = tool["description"]
    out["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    return out


# ---- input items


@functools.cache
def _item_types() -> dict[str, tuple[pydantic.TypeAdapter[Any], frozenset[str]]]:
    """Validators and allowed keys of the function call items and the message content parts."""
    from openai.types.responses import (
        ResponseFunctionToolCallParam,
        ResponseInputImageParam,
        ResponseInputTextParam,
        ResponseOutputRefusalParam,
        ResponseOutputTextParam,
    )
    from openai.types.responses.response_input_item_param import FunctionCallOutput

    out: dict[str, tuple[pydantic.TypeAdapter[Any], frozenset[str]]] = {}
    for kind, cls in (
        ("function_call", ResponseFunctionToolCallParam),
        ("function_call_output", FunctionCallOutput),
        ("input_text", ResponseInputTextParam),
        ("input_image", ResponseInputImageParam),
        ("output_text", ResponseOutputTextParam),
        ("refusal", ResponseOutputRefusalParam),
    ):
        keys = cls.__required_keys__ | cls.__optional_keys__
        out[kind] = (pydantic.TypeAdapter(cls), frozenset(keys))
    return out


#: Keys of the three message param types (easy, input and output messages) together.
_MESSAGE_KEYS = frozenset({"id", "type", "role", "content", "status", "phase"})


def _checked(kind: str, value: dict[str, Any], where: str) -> None:
    adapter, keys = _item_types()[kind]
    for key in value:
        if key not in keys:
            raise unknown(f"{where}.{shown(key)}")
    try:
        materialize(adapter.validate_python(value, strict=True))
    except pydantic.ValidationError as exc:
        raise _from_pydantic(exc, where) from None


def _input_items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [_message("user", [{"type": "input_text", "text": value}], None)]
    if not isinstance(value, list):
        raise _invalid_type("input", "a string or an array of input items", value)
    return [_input_item(item, f"input[{i}]") for i, item in enumerate(value)]


def _input_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _invalid_type(where, "an object", item)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _message_item(item, where)
    if kind == "function_call":
        _checked(kind, item, where)
        return {
            "type": "function_call",
            "id": item.get("id") or new_id("fc"),
            "status": "completed",
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
        }
    if kind == "function_call_output":
        _checked(kind, item, where)
        if not item.get("call_id"):
            raise missing(f"{where}.call_id")
        output = item["output"]
        if not isinstance(output, str):  # a list of content parts: the brain reads their text
            output = " ".join(str(p.get("text")) for p in output if p.get("type") == "input_text")
        return {
            "type": "function_call_output",
            "id": item.get("id") or new_id("fco"),
            "call_id": item["call_id"],
            "output": output,
        }
    if kind is None:
        raise missing(f"{where}.type")
    raise BadRequest(
        f"Input item type {shown(kind)!r} is not supported by fastvoice serve; the supported types are "
        f"{', '.join(ITEM_TYPES)} (send the items themselves, not item_reference, and no hosted tool calls).",
        f"{where}.type",
        "unsupported_value",
    )


def _message_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    for key in item:
        if key not in _MESSAGE_KEYS:
            raise unknown(f"{where}.{shown(key)}")
    role = item.get("role")
    if role not in _ROLES:
        if role is None:
            raise missing(f"{where}.role")
        raise BadRequest(
            f"Invalid value: {shown(role)!r}. Supported values are: {', '.join(map(repr, _ROLES))}.",
            f"{where}.role",
            "invalid_value",
        )
    for key, allowed in (("status", _STATUSES), ("phase", ("commentary", "final_answer", None))):
        if key in item and item[key] not in allowed:
            raise BadRequest(
                f"Invalid value for '{where}.{key}': {shown(item[key])!r}.", f"{where}.{key}", "invalid_value"
            )
    if "id" in item and not isinstance(item["id"], str):
        raise _invalid_type(f"{where}.id", "a string", item["id"])
    if "content" not in item:
        raise missing(f"{where}.content")
    content = item["content"]
    if isinstance(content, str):
        parts = [{"type": "output_text" if role == "assistant" else "input_text", "text": content}]
    elif isinstance(content, list):
        parts = [_part(part, role, f"{where}.content[{j}]") for j, part in enumerate(content)]
    else:
        raise _invalid_type(f"{where}.content", "a string or an array of content parts", content)
    return _message(role, parts, item.get("id"))


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _invalid_type(where, "an object", part)
    kind = part.get("type")
    allowed = ("output_text", "refusal") if role == "assistant" else ("input_text", "input_image")
    if kind not in allowed and not (role == "assistant" and kind == "input_text"):
        raise BadRequest(
            f"Content type {shown(kind)!r} is not supported in a {role} message by fastvoice serve; use "
            f"{' or '.join(allowed)} (file inputs are not available offline).",
            f"{where}.type",
            "unsupported_value" if kind == "input_file" else "invalid_value",
        )
    _checked(str(kind), part, where)
    if kind == "input_image":
        image = {"type": "input_image", "detail": part["detail"]}
        if part.get("image_url") is not None:
            image["image_url"] = part["image_url"]
        return image
    text = str(part[_TEXT_PARTS[str(kind)]])
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _message(role: str, parts: list[dict[str, Any]], item_id: str | None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": "completed",
        "role": "system" if role == "developer" else role,
        "content": parts,
    }


# ---- the conversation as a whole


def check_tool_pairs(items: Sequence[Mapping[str, Any]]) -> None:
    """Every tool output answers an earlier call, and every call has its output (OpenAI's own checks)."""
    calls: dict[str, bool] = {}  # call_id -> answered
    for item in items:
        if item.get("type") == "function_call":
            calls[str(item["call_id"])] = False
        elif item.get("type") == "function_call_output":
            call_id = str(item["call_id"])
            if call_id not in calls:
                raise BadRequest(
                    f"No tool call found for function call output with call_id {shown(call_id)}.", "input"
                )
            calls[call_id] = True
    for call_id, answered in calls.items():
        if not answered:
            raise BadRequest(f"No tool output found for function call {shown(call_id)}.", "input")
