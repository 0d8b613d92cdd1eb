"""Exception classes of the transport. Raised from Rust (`rust/src/transport/errors.rs`).

No message here is ever built from request headers or the URL query, so credentials such as the
`Authorization` value cannot leak through `str()`, `repr()` or tracebacks.
"""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "MessageTooBig",
    "ProtocolError",
    "TransportError",
]


class TransportError(Exception):
    """Base class of every error raised by `fastvoice.transport`."""


class ConnectError(TransportError):
    """Opening the connection failed: DNS, TCP, TLS, timeout or a refused HTTP upgrade.

    `status` is the HTTP status of a refused upgrade (e.g. 401 for a bad key) and `body` the first
    512 bytes of its response body; both are `None` for failures below HTTP. Credentials a server
    echoes (the key that was sent, `Bearer` tokens, `sk-` keys) are masked natively before the body or
    the message reach Python.
    """

    def __init__(self, message: str, status: int | None = None, body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ConnectionClosed(TransportError):
    """The connection is closed; `code` and `reason` come from the close frame (1006: connection lost)."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = f"connection closed with code {code}"
        super().__init__(f"{text}: {reason}" if reason else text)


class ConnectionClosedOK(ConnectionClosed):
    """A clean close: code 1000 (normal), 1001 (going away) or a close frame without a code (1005)."""


class ConnectionClosedError(ConnectionClosed):
    """An abnormal close: any other code, including 1006 when the connection was lost."""


class ProtocolError(TransportError):
    """The peer broke the WebSocket protocol (e.g. invalid UTF-8 in a text frame).

    Raised once by the receive that hit it; the connection is then closed with `code`
    (1002 or 1007) and later calls raise `ConnectionClosedError`.
    """

    def __init__(self, message: str, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class MessageTooBig(TransportError):
    """A message is over `max_message_size`.

    For a message being sent, nothing is sent and the connection stays open (`code` is `None`).
    For a received one, the connection is closed with code 1009.
    """

    def __init__(self, message: str, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
