"""The voice package's one telemetry hook.

`fastvoice.telemetry` (attach/execute, like Elixir's :telemetry) is optional from this
package's point of view: when it is importable, `_emit` forwards to its `execute`; when not,
`_emit` is a no-op costing one global lookup.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("fastvoice")

Execute = Callable[[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]], object]
_UNRESOLVED = object()
_execute: Any = _UNRESOLVED


def _resolve() -> Execute | None:
    global _execute
    try:
        module = importlib.import_module("fastvoice.telemetry")
        _execute = getattr(module, "execute", None)
    except ImportError:
        _execute = None
    return _execute  # type: ignore[no-any-return]


def _emit(event: tuple[str, ...], measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Emit `("fastvoice", "voice", ...)` events; telemetry can never break the pipeline."""
    execute = _resolve() if _execute is _UNRESOLVED else _execute
    if execute is None:
        return
    try:
        execute(event, measurements, metadata)
    except Exception:
        logger.exception("telemetry handler failed for %s", event)
