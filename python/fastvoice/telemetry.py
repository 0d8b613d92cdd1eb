"""Telemetry events in the style of Erlang's ``:telemetry``, plus OpenTelemetry spans when available.

Event names are tuples of strings, e.g. ``("fastvoice", "realtime", "session", "start")``. Handlers are plain
functions ``fn(event_name, measurements, metadata, config)`` attached under a unique id::

    telemetry.attach("log-audio", ("fastvoice", "realtime", "audio", "sent"), on_audio)
    telemetry.execute(("fastvoice", "realtime", "audio", "sent"), {"bytes": 960}, {"session_id": "s1"})

Design points:

* **Cheap when unused.** ``execute`` is one dict lookup when nothing is attached to the event (~100 ns), so
  library code can emit per audio chunk unconditionally. Handler tables are copy-on-write: attach/detach swap
  in a new dict under a lock, ``execute`` reads without locking, and a handler can detach itself while
  running.
* **A failing handler never breaks the emitter**: it is logged on the ``fastvoice`` logger and detached (as
  ``:telemetry`` does), so a broken metrics hook cannot take a voice session down.
* :func:`span` brackets a block with ``start`` and ``stop``/``exception`` events (``duration`` in nanoseconds)
  and, when ``opentelemetry-api`` is importable, also opens an OpenTelemetry span with the metadata as
  attributes.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "REALTIME_AUDIO_RECEIVED",
    "REALTIME_AUDIO_SENT",
    "REALTIME_SESSION_ERROR",
    "REALTIME_SESSION_START",
    "REALTIME_SESSION_STOP",
    "REALTIME_TOOL_CALL",
    "REALTIME_TOOL_RESULT",
    "EventName",
    "HandlerInfo",
    "SpanContext",
    "attach",
    "attach_many",
    "detach",
    "execute",
    "list_handlers",
    "span",
]

logger = logging.getLogger("fastvoice")

EventName: TypeAlias = tuple[str, ...]
# The realtime session's events (one place, so emitters and handlers cannot drift apart).
REALTIME_SESSION_START: EventName = ("fastvoice", "realtime", "session", "start")
REALTIME_SESSION_STOP: EventName = ("fastvoice", "realtime", "session", "stop")
REALTIME_SESSION_ERROR: EventName = ("fastvoice", "realtime", "session", "error")
REALTIME_AUDIO_SENT: EventName = ("fastvoice", "realtime", "audio", "sent")
REALTIME_AUDIO_RECEIVED: EventName = ("fastvoice", "realtime", "audio", "received")
REALTIME_TOOL_CALL: EventName = ("fastvoice", "realtime", "tool", "call")
REALTIME_TOOL_RESULT: EventName = ("fastvoice", "realtime", "tool", "result")

Handler: TypeAlias = Callable[[EventName, Mapping[str, Any], Mapping[str, Any], Any], object]


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """One attachment of a handler to one event (as returned by :func:`list_handlers`)."""

    id: str
    event_name: EventName
    function: Handler
    config: Any = None


_lock = threading.Lock()
# event name -> handlers attached to it; replaced wholesale (never mutated) so readers need no lock.
_table: dict[EventName, tuple[HandlerInfo, ...]] = {}
# handler id -> the event names it is attached to.
_ids: dict[str, tuple[EventName, ...]] = {}


def _check_name(event_name: object) -> EventName:
    if (
        not isinstance(event_name, tuple)
        or not event_name
        or not all(isinstance(part, str) and part for part in event_name)
    ):
        raise ValueError(f"event names are non-empty tuples of non-empty strings, got {event_name!r}")
    return event_name


def attach_many(handler_id: str, event_names: Sequence[EventName], fn: Handler, config: Any = None) -> None:
    """Attach ``fn`` to every event in ``event_names`` under ``handler_id``.

    Raises ``ValueError`` if ``handler_id`` is already attached (detach it first), ``TypeError`` if ``fn`` is
    not callable.
    """
    global _table
    if not isinstance(handler_id, str) or not handler_id:
        raise ValueError("handler_id must be a non-empty str")
    if not callable(fn):
        raise TypeError("telemetry handler must be callable")
    names = tuple(dict.fromkeys(_check_name(n) for n in event_names))
    if not names:
        raise ValueError("attach_many needs at least one event name")
    with _lock:
        if handler_id in _ids:
            raise ValueError(f"telemetry handler {handler_id!r} is already attached")
        table = dict(_table)
        for name in names:
            table[name] = (*table.get(name, ()), HandlerInfo(handler_id, name, fn, config))
        _ids[handler_id] = names
        _table = table


def attach(handler_id: str, event_name: EventName, fn: Handler, config: Any = None) -> None:
    """Attach ``fn`` to one event; see :func:`attach_many`."""
    attach_many(handler_id, [event_name], fn, config)


def detach(handler_id: str) -> bool:
    """Detach every attachment of ``handler_id``; returns ``False`` if it was not attached."""
    global _table
    with _lock:
        names = _ids.pop(handler_id, None)
        if names is None:
            return False
        table = dict(_table)
        for name in names:
            left = tuple(h for h in table.get(name, ()) if h.id != handler_id)
            if left:
                table[name] = left
            else:
                table.pop(name, None)
        _table = table
    return True


def list_handlers(prefix: Sequence[str] = ()) -> list[HandlerInfo]:
    """Attachments whose event name starts with ``prefix`` (all of them for ``()``)."""
    p = tuple(prefix)
    table = _table
    return [h for name, hs in table.items() if name[: len(p)] == p for h in hs]


def execute(
    event_name: EventName, measurements: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> None:
    """Emit an event to the handlers attached to exactly ``event_name``.

    Handlers run synchronously in the caller's thread, in attach order. One that raises is logged and
    detached; the caller never sees the exception.
    """
    handlers = _table.get(event_name)
    if not handlers:
        return
    meta: Mapping[str, Any] = metadata if metadata is not None else {}
    for h in handlers:
        try:
            h.function(event_name, measurements, meta, h.config)
        except Exception:
            logger.exception(
                "fastvoice telemetry handler %r failed on %s and was detached", h.id, ".".join(event_name)
            )
            detach(h.id)


# ---- spans
# ------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SpanContext:
    """Yielded by :func:`span`: add to ``metadata`` / ``measurements`` to enrich the ``stop`` event."""

    event_prefix: EventName
    metadata: dict[str, Any]
    measurements: dict[str, Any] = field(default_factory=dict)
    otel_span: Any = None


_otel_tracer: Any = None
_otel_checked = False


def _tracer() -> Any:
    """The OpenTelemetry tracer, imported on first use; ``None`` when ``opentelemetry-api`` is not
    installed."""
    global _otel_tracer, _otel_checked
    if not _otel_checked:
        try:
            from opentelemetry import trace
        except ImportError:
            _otel_tracer = None
        else:
            _otel_tracer = trace.get_tracer("fastvoice")
        _otel_checked = True
    return _otel_tracer


def _otel_attributes(metadata: Mapping[str, Any]) -> dict[str, Any]:
    # OTel attributes must be primitives (or sequences of them); anything else is stringified.
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        out[str(k)] = v if isinstance(v, str | bool | int | float) else repr(v)
    return out


@contextmanager
def span(event_prefix: EventName, metadata: Mapping[str, Any] | None = None) -> Iterator[SpanContext]:
    """Emit ``prefix + ("start",)`` now and ``prefix + ("stop",)`` when the block ends, or ``prefix +
    ("exception",)`` (metadata gains ``kind``, ``reason``, ``stacktrace``) if it raises; the exception
    propagates. Measurements: ``monotonic_time`` (ns) on start, ``duration`` (ns) on stop/exception.
    """
    prefix = _check_name(event_prefix)
    ctx = SpanContext(prefix, dict(metadata or {}))
    tracer = _tracer()
    cm = (
        tracer.start_as_current_span(".".join(prefix), attributes=_otel_attributes(ctx.metadata))
        if tracer
        else None
    )
    ctx.otel_span = cm.__enter__() if cm is not None else None
    start = time.monotonic_ns()
    execute((*prefix, "start"), {"monotonic_time": start, "system_time": time.time_ns()}, ctx.metadata)
    try:
        yield ctx
    except BaseException as exc:
        duration = time.monotonic_ns() - start
        meta = {
            **ctx.metadata,
            "kind": type(exc).__name__,
            "reason": exc,
            "stacktrace": traceback.format_exception(exc),
        }
        execute(
            (*prefix, "exception"),
            {"duration": duration, "monotonic_time": start + duration, **ctx.measurements},
            meta,
        )
        if cm is not None:
            # OTel records the exception and sets ERROR status itself.
            cm.__exit__(type(exc), exc, exc.__traceback__)
        raise
    duration = time.monotonic_ns() - start
    execute(
        (*prefix, "stop"),
        {"duration": duration, "monotonic_time": start + duration, **ctx.measurements},
        ctx.metadata,
    )
    if cm is not None:
        if ctx.otel_span is not None:
            ctx.otel_span.set_attributes(_otel_attributes(ctx.metadata))
        cm.__exit__(None, None, None)
