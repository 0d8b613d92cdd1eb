"""Test doubles for fastvoice users: a scripted local Realtime server and GA protocol validators.

Needs the ``testing`` extra (``pip install fastvoice[testing]``: aiohttp and openai).
"""

from fastvoice.testing._script import ScriptedResponse, ScriptedToolCall
from fastvoice.testing.realtime_server import ConnectionInfo, FakeRealtimeServer, ReceivedFrame
from fastvoice.testing.validation import EventValidationError, validate_client_event, validate_server_event

__all__ = [
    "ConnectionInfo",
    "EventValidationError",
    "FakeRealtimeServer",
    "ReceivedFrame",
    "ScriptedResponse",
    "ScriptedToolCall",
    "validate_client_event",
    "validate_server_event",
]
