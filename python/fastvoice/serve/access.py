"""Who may open a session: the ``Origin`` check and the API key, decided before the WebSocket upgrade.

A browser lets any web page open a WebSocket to ``ws://127.0.0.1``; only the ``Origin`` header it adds tells
the pages apart. So an upgrade carrying an ``Origin`` that is not loopback is refused unless the operator
allowed it; an upgrade without one (a non-browser client, which could send anything anyway) passes. The key
is accepted the two ways OpenAI's clients send it: ``Authorization: Bearer KEY``, or (browsers cannot set
headers) the ``openai-insecure-api-key.KEY`` WebSocket subprotocol beside ``realtime``. Refusals are HTTP
errors with the OpenAI body shape ``{"error": {"message", "type", "param", "code"}}``; none repeats the key.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["Access", "http_error", "is_loopback_host", "parse_origin"]

KEY_PROTOCOL_PREFIX = "openai-insecure-api-key."
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[^/?#@:\[\]\s]+)(:[0-9]{1,5})?$")


def http_error(status: int, message: str, *, type: str, code: str | None) -> web.Response:
    """An HTTP error response with the OpenAI error body."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1), with or without IPv6 brackets."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origin(origin: str) -> str:
    """``origin`` normalised for exact comparison (lower case), or ValueError if it is not
    ``scheme://host[:port]`` (or ``null``, what sandboxed pages and ``file:`` URLs send)."""
    value = origin.strip().lower()
    if value != "null" and not _ORIGIN.match(value):
        raise ValueError(f"an allowed origin must be scheme://host[:port] (no path), got {origin!r}")
    return value


def _loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname or "")


class Access:
    """The checks one server applies to every upgrade request. The key is kept as bytes and never shown."""

    __slots__ = ("_key", "allowed_origins")

    def __init__(self, api_key: str | None, allowed_origins: Iterable[str]) -> None:
        if api_key is not None and not api_key.strip():
            raise ValueError("api_key must not be empty (pass None for no key)")
        self._key = api_key.encode() if api_key is not None else None
        self.allowed_origins = frozenset(parse_origin(o) for o in allowed_origins)

    @property
    def requires_key(self) -> bool:
        return self._key is not None

    def __repr__(self) -> str:
        key = "set" if self._key is not None else "none"
        return f"Access(api_key={key}, allowed_origins={sorted(self.allowed_origins)})"

    def refusal(self, headers: Mapping[str, str]) -> web.Response | None:
        """The error response for an upgrade request with these headers, or None to let it through."""
        origin = headers.get("Origin")
        if origin is not None and not _loopback_origin(origin):
            if origin.strip().lower() not in self.allowed_origins:
                shown = origin[:200]
                return http_error(
                    403,
                    f"Origin {shown!r} is not allowed. Only loopback origins are accepted unless the server "
                    f"allows this one (fastvoice serve --allow-origin {shown}).",
                    type="invalid_request_error",
                    code="origin_not_allowed",
                )
        if self._key is not None and not self._key_matches(headers):
            return http_error(
                401,
                "Missing or incorrect API key. Send 'Authorization: Bearer KEY' (or, from a browser, the "
                f"'{KEY_PROTOCOL_PREFIX}KEY' WebSocket subprotocol) with the key the server was given.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        return None

    def _key_matches(self, headers: Mapping[str, str]) -> bool:
        assert self._key is not None
        offered: list[bytes] = []
        scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            offered.append(token.strip().encode("utf-8", "surrogateescape"))
        for proto in headers.get("Sec-WebSocket-Protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(KEY_PROTOCOL_PREFIX):
                offered.append(proto[len(KEY_PROTOCOL_PREFIX) :].encode("utf-8", "surrogateescape"))
        # Compare every offer in full (no early exit), each in constant time.
        ok = False
        for candidate in offered:
            ok |= hmac.compare_digest(candidate, self._key)
        return ok
