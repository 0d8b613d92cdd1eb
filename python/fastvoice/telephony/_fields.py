"""Typed member readers for the providers' JSON frames, each failure a typed error naming the member.

The three protocol modules read the same kinds of members (objects, strings, counters that arrive as
strings or numbers); one reader, parameterised by the module's error class, keeps their messages alike.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Fields"]


class Fields:
    """Readers raising ``error`` (a ``ValueError`` subclass) with the member's path in the message.
    ``null_is_default``: a JSON ``null`` where a string has a default means the default (Telnyx and
    Plivo send nulls for absent values); otherwise it is the wrong type."""

    __slots__ = ("error", "null_is_default")

    def __init__(self, error: type[ValueError], *, null_is_default: bool = True) -> None:
        self.error = error
        self.null_is_default = null_is_default

    def load(self, raw: str | bytes) -> dict[str, Any]:
        """One frame: a JSON object."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.error(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise self.error(f"a message must be a JSON object, got {type(data).__name__}")
        return data

    def base64(self, data: Mapping[str, Any], key: str, where: str) -> bytes:
        """A base64 string member, decoded (strictly: nothing outside the alphabet)."""
        try:
            return base64.b64decode(self.text(data, key, where), validate=True)
        except binascii.Error as exc:
            raise self.error(f"'{where}{key}' is not base64: {exc}") from None

    def obj(self, data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            raise self.error(f"'{where}{key}' must be an object, got {type(value).__name__}")
        return value

    def opt_obj(self, data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        """An object, or ``{}`` when absent or null."""
        return {} if data.get(key) is None else self.obj(data, key, where)

    def text(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value is None and default is not None and self.null_is_default:
            return default
        if not isinstance(value, str):
            raise self.error(f"'{where}{key}' must be a string, got {type(value).__name__}")
        return value

    def integer(self, data: Mapping[str, Any], key: str, where: str) -> int | None:
        """Counters arrive as strings ("sequenceNumber": "2") or numbers; None when absent."""
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.error(f"'{where}{key}' must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise self.error(f"'{where}{key}' must be an integer, got {value!r}") from None

    def strings(self, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"'{where}{key}' must be a list of strings, got {value!r}")
        return tuple(value)
