"""Validation of Realtime GA events against the ``openai`` package's own types.

``pydantic.TypeAdapter(RealtimeClientEvent)`` alone is lenient in two ways that hide real bugs: openai's
models accept unknown fields (``extra="allow"``, so a misspelt ``"voise"`` passes), and the union is not
discriminated for pydantic (an unknown ``type`` yields a wall of errors, one per member). Here the ``type``
field picks the one model to validate against, and ``forbid_extra=True`` (the default) also rejects unknown
fields at any depth.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Mapping
from typing import Any

import pydantic

__all__ = [
    "EventValidationError",
    "client_event_adapter",
    "client_event_types",
    "server_event_adapter",
    "server_event_types",
    "validate_client_event",
    "validate_server_event",
]


class EventValidationError(ValueError):
    """An event does not match the Realtime GA protocol (``problem`` says what, ``event_type`` which
    event)."""

    def __init__(self, event_type: str | None, problem: str) -> None:
        self.event_type = event_type
        self.problem = problem
        super().__init__(f"{event_type or '<no type>'}: {problem}")


def materialize(value: Any) -> Any:
    """Walk a validated TypedDict value: its ``Iterable[...]`` fields validate lazily, and walking them
    forces every element's check."""
    if isinstance(value, Mapping):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [materialize(v) for v in value]
    return value


def union_members(union_alias: Any) -> dict[str, type[pydantic.BaseModel]]:
    # RealtimeClientEvent is Annotated[Union[...], PropertyInfo]; map each member's literal `type` to it.
    union = (
        typing.get_args(union_alias)[0] if typing.get_origin(union_alias) is typing.Annotated else union_alias
    )
    out: dict[str, type[pydantic.BaseModel]] = {}
    for model in typing.get_args(union):
        for literal in typing.get_args(model.model_fields["type"].annotation):
            out[literal] = model
    return out


@functools.cache
def _client_models() -> dict[str, type[pydantic.BaseModel]]:
    from openai.types.realtime import RealtimeClientEvent

    return union_members(RealtimeClientEvent)


@functools.cache
def _server_models() -> dict[str, type[pydantic.BaseModel]]:
    from openai.types.realtime import RealtimeServerEvent

    return union_members(RealtimeServerEvent)


@functools.cache
def client_event_adapter() -> pydantic.TypeAdapter[Any]:
    """``TypeAdapter(RealtimeClientEvent)`` (the lenient reference validator)."""
    from openai.types.realtime import RealtimeClientEvent

    return pydantic.TypeAdapter(RealtimeClientEvent)


@functools.cache
def server_event_adapter() -> pydantic.TypeAdapter[Any]:
    """``TypeAdapter(RealtimeServerEvent)`` (the lenient reference validator)."""
    from openai.types.realtime import RealtimeServerEvent

    return pydantic.TypeAdapter(RealtimeServerEvent)


def client_event_types() -> frozenset[str]:
    """Every GA client event type."""
    return frozenset(_client_models())


def server_event_types() -> frozenset[str]:
    """Every GA server event type."""
    return frozenset(_server_models())


def _extra_fields(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            found.append(f"{path}.{key}" if path else key)
        for name in type(value).model_fields:
            found.extend(_extra_fields(getattr(value, name), f"{path}.{name}" if path else name))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found.extend(_extra_fields(v, f"{path}[{i}]"))
    return found


def _validate(
    event: Mapping[str, Any] | str | bytes,
    models: dict[str, type[pydantic.BaseModel]],
    side: str,
    forbid_extra: bool,
) -> pydantic.BaseModel:
    if isinstance(event, str | bytes):
        try:
            event = json.loads(event)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EventValidationError(None, f"not valid JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise EventValidationError(None, f"a {side} event must be a JSON object, got {type(event).__name__}")
    etype = event.get("type")
    if not isinstance(etype, str):
        raise EventValidationError(None, "missing or non-string 'type'")
    model = models.get(etype)
    if model is None:
        raise EventValidationError(etype, f"not a GA {side} event type")
    try:
        parsed = model.model_validate(dict(event))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise EventValidationError(etype, problems) from None
    if forbid_extra:
        extra = _extra_fields(parsed, "")
        if extra:
            raise EventValidationError(etype, f"unknown field(s): {', '.join(extra)}")
    return parsed


def validate_client_event(
    event: Mapping[str, Any] | str | bytes, *, forbid_extra: bool = True
) -> pydantic.BaseModel:
    """Parse ``event`` (a dict or JSON text) as a GA client event; raises :class:`EventValidationError`."""
    return _validate(event, _client_models(), "client", forbid_extra)


def validate_server_event(
    event: Mapping[str, Any] | str | bytes, *, forbid_extra: bool = True
) -> pydantic.BaseModel:
    """Parse ``event`` (a dict or JSON text) as a GA server event; raises :class:`EventValidationError`."""
    return _validate(event, _server_models(), "server", forbid_extra)
