"""Value ranges the ``openai`` types do not encode, checked when a client sets them.

The GA types give ``speed`` as a float and VAD timings as ints; the service also refuses values out of their
documented ranges at ``session.update`` time. Checking them here (before anything is merged) keeps a session's
config unchanged by a refused update, instead of failing a response later with an engine error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastvoice.realtime.config import VOICES
from fastvoice.serve.events import ClientEventError

__all__ = ["check_response_params", "check_session_update"]

SPEED_RANGE = (0.25, 1.5)  # session.audio.output.speed, as documented by the service
MAX_OUTPUT_TOKENS = 4096


def _number(value: Any, low: float, high: float | None, param: str, event_id: str | None) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return  # absent, or a type error the schema check already reports
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ClientEventError(
            "invalid_value",
            f"Invalid '{param}': {value!r}. Expected a value {span}.",
            param,
            event_id,
        )


def _tokens(value: Any, param: str, event_id: str | None) -> None:
    if value != "inf":
        _number(value, 1, MAX_OUTPUT_TOKENS, param, event_id)


def _sub(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _voice(value: Any, event_id: str | None) -> None:
    # The schema allows any string or {"id": ...}; only the built-in voices have an offline voice.
    if value is None or value in VOICES:
        return
    what = "custom voices are not available offline" if isinstance(value, Mapping) else f"{value!r}"[:200]
    raise ClientEventError(
        "invalid_value",
        f"Invalid 'session.audio.output.voice': {what}. Expected one of {', '.join(VOICES)}.",
        "session.audio.output.voice",
        event_id,
    )


def check_session_update(update: Mapping[str, Any], event_id: str | None) -> None:
    """Raise :class:`ClientEventError` naming the param if ``session.update``'s ``update`` (already
    schema-valid) holds a value out of range."""
    audio = _sub(update, "audio")
    out = _sub(audio, "output")
    _number(out.get("speed"), *SPEED_RANGE, "session.audio.output.speed", event_id)
    _voice(out.get("voice"), event_id)
    td = _sub(_sub(audio, "input"), "turn_detection")
    vad = "session.audio.input.turn_detection."
    if td.get("type") == "server_vad":
        _number(td.get("threshold"), 0.0, 1.0, vad + "threshold", event_id)
        _number(td.get("prefix_padding_ms"), 0, None, vad + "prefix_padding_ms", event_id)
        _number(td.get("silence_duration_ms"), 0, None, vad + "silence_duration_ms", event_id)
        _number(td.get("idle_timeout_ms"), 0, None, vad + "idle_timeout_ms", event_id)
    _tokens(update.get("max_output_tokens"), "session.max_output_tokens", event_id)


def check_response_params(params: Mapping[str, Any] | None, event_id: str | None) -> None:
    """The same for ``response.create``'s ``response``."""
    if params:
        _tokens(params.get("max_output_tokens"), "response.max_output_tokens", event_id)
