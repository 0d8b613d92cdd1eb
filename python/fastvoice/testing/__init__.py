"""Test doubles for fastvoice users: a scripted local Realtime server (and OpenAI's SIP calls side of it,
``FakeSipServer``) and GA protocol validators.

Needs the ``testing`` extra (``pip install fastvoice[testing]``: aiohttp and openai).
"""

from fastvoice.testing._script import ScriptedResponse, ScriptedToolCall
from fastvoice.testing.openai_server import FakeOpenAIServer, FakeResponse, RecordedRequest
from fastvoice.testing.realtime_server import ConnectionInfo, FakeRealtimeServer, ReceivedFrame
from fastvoice.testing.sip_server import FakeCall, FakeSipServer, SipRequest
from fastvoice.testing.validation import EventValidationError, validate_client_event, validate_server_event

__all__ = [
    "ConnectionInfo",
    "EventValidationError",
    "FakeCall",
    "FakeOpenAIServer",
    "FakeRealtimeServer",
    "FakeResponse",
    "FakeSipServer",
    "ReceivedFrame",
    "RecordedRequest",
    "ScriptedResponse",
    "ScriptedToolCall",
    "SipRequest",
    "validate_client_event",
    "validate_server_event",
]
