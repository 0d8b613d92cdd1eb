"""GA event shapes the served session sends, and how it words its errors.

Errors copy the real service's shape (``invalid_request_error`` with ``code``, ``param`` and the client's
``event_id``), so a client's error handling can be exercised offline: an unknown event type is an
``invalid_value`` of ``type``, a missing field a ``missing_required_parameter``, an unknown field an
``unknown_parameter``. Acceptance itself is decided by :func:`fastvoice.testing.validate_client_event`,
the same strict GA check the fake server uses.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastvoice.serve.brain import item_text
from fastvoice.testing.validation import EventValidationError, client_event_types, validate_client_event

__all__ = [
    "ClientEventError",
    "check_client_event",
    "error_event",
    "new_id",
    "parse_client_json",
    "response_shell",
    "usage",
]

MAX_DEPTH = 64  # JSON nesting a client event may have; GA events need under 10
MAX_SHOWN = 200  # characters of a client's own value repeated in an error message
MAX_EVENT_ID = 512  # the service's limit on client event ids


def new_id(prefix: str) -> str:
    """A fresh id in the service's style (``item_``, ``resp_``, ``call_``, ``event_`` + 20 characters)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def shown(value: object) -> str:
    """``value`` as text for an error message, cut to :data:`MAX_SHOWN` characters (a client's 30 MB field
    name must not come back as a 30 MB error)."""
    text = str(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


class ClientEventError(Exception):
    """A client event the session rejects; becomes one ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None, event_id: Any = None) -> None:
        super().__init__(message)
        if len(message) > 4 * MAX_SHOWN:
            message = message[: 4 * MAX_SHOWN] + "..."
        self.code, self.message = code, message
        self.param = shown(param) if param is not None else None
        self.event_id: str | None = None
        self.set_event_id(event_id)

    def set_event_id(self, event_id: Any) -> None:
        """Echo the client's ``event_id`` (when it is a string the service would accept)."""
        if isinstance(event_id, str) and len(event_id) <= MAX_EVENT_ID:
            self.event_id = event_id


def parse_client_json(raw: str) -> Any:
    """``raw`` parsed, or :class:`ClientEventError` ``invalid_json`` if it is not JSON or nests deeper than
    :data:`MAX_DEPTH` (``"[" * 100000`` would otherwise overflow the parser's recursion, and deep values
    would overflow every later copy and validation)."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ClientEventError(
            "invalid_json", f"We could not parse the JSON body of your request: {shown(exc)}"
        ) from None
    except RecursionError:
        too_deep = True
    else:
        too_deep = _too_deep(data)
    if too_deep:
        raise ClientEventError(
            "invalid_json",
            f"We could not parse the JSON body of your request: it nests deeper than {MAX_DEPTH} levels.",
        )
    return data


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON (and would be echoed back as invalid JSON).
    raise json.JSONDecodeError(f"{name} is not a valid JSON value", name, 0)


def _too_deep(data: Any) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def error_event(exc: ClientEventError) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "invalid_request_error", "code": exc.code, "message": exc.message}
    if exc.param is not None:
        error["param"] = exc.param
    if exc.event_id is not None:
        error["event_id"] = exc.event_id
    return {"type": "error", "error": error}


def check_client_event(data: Any) -> dict[str, Any]:
    """``data`` if it is a valid GA client event, else raises :class:`ClientEventError` worded like the
    service."""
    if not isinstance(data, dict):
        raise ClientEventError(
            "invalid_value", f"Expected a JSON object (a client event), got {type(data).__name__}."
        )
    event_id = data.get("event_id")
    etype = data.get("type")
    if not isinstance(etype, str):
        raise ClientEventError(
            "missing_required_parameter", "Missing required parameter: 'type'.", "type", event_id
        )
    if etype not in client_event_types():
        supported = ", ".join(f"'{t}'" for t in sorted(client_event_types()))
        raise ClientEventError(
            "invalid_value",
            f"Invalid value: '{shown(etype)}'. Supported values are: {supported}.",
            "type",
            event_id,
        )
    try:
        validate_client_event(data)
    except EventValidationError as exc:
        raise _as_client_error(exc.problem, event_id) from None
    return data


def _as_client_error(problem: str, event_id: Any) -> ClientEventError:
    prefix = "unknown field(s): "
    if problem.startswith(prefix):
        param = problem[len(prefix) :].split(", ")[0]
        return ClientEventError("unknown_parameter", f"Unknown parameter: '{param}'.", param, event_id)
    first = _meant(problem.split("; "))[0]
    param, _, msg = first.partition(": ")
    param = _field_path(param)
    if msg == "Field required":
        return ClientEventError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param, event_id
        )
    return ClientEventError("invalid_value", f"Invalid value for '{param}': {msg}.", param, event_id)


def _meant(problems: list[str]) -> list[str]:
    """``problems`` without those of a union member (``session.RealtimeSessionCreateRequest``) whose own
    ``type`` the value does not have: a bad transcription session is reported as that, not as a bad
    realtime one."""
    wrong = []
    for problem in problems:
        loc, _, msg = problem.partition(": ")
        member = loc.removesuffix(".type")
        if member != loc and member.rpartition(".")[2][:1].isupper() and msg.startswith("Input should be"):
            wrong.append(member + ".")
    kept = [p for p in problems if not p.startswith(tuple(wrong))] if wrong else problems
    return kept or problems


_UNION_MEMBERS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "is-instance"})


def _field_path(loc: str) -> str:
    """pydantic's error location without the union members it tried (``session.RealtimeSessionCreateRequest``
    is the client's ``session``; ``max_output_tokens.int`` its ``max_output_tokens``)."""
    parts = [p for p in loc.split(".") if not (p[:1].isupper() or "[" in p or p in _UNION_MEMBERS)]
    return ".".join(parts) or loc


def response_shell(
    rid: str, status: str, modalities: list[str], conversation_id: str | None, metadata: Any = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": rid,
        "object": "realtime.response",
        "status": status,
        "output": [],
        "output_modalities": modalities,
        "conversation_id": conversation_id,
    }
    if metadata is not None:
        response["metadata"] = metadata
    return response


def usage(
    input_text_chars: int, input_audio_ms: float, output_text_chars: int, output_audio_ms: float
) -> dict[str, Any]:
    """Token counts as the service would bill them, estimated: 4 characters per text token, 100 ms per input
    audio token and 50 ms per output audio token (the service's published audio rates)."""
    in_text = (input_text_chars + 3) // 4
    in_audio = int(input_audio_ms // 100)
    out_text = (output_text_chars + 3) // 4
    out_audio = int(output_audio_ms // 50)
    return {
        "total_tokens": in_text + in_audio + out_text + out_audio,
        "input_tokens": in_text + in_audio,
        "output_tokens": out_text + out_audio,
        "input_token_details": {
            "text_tokens": in_text,
            "audio_tokens": in_audio,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0},
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def item_text_chars(items: list[dict[str, Any]]) -> int:
    return sum(
        len(item_text(i)) if i.get("type") == "message" else len(str(i.get("output", ""))) for i in items
    )
