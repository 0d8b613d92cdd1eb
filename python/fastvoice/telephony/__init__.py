"""Phone calls bridged to realtime agents.

- :class:`PhoneServer` answers the providers' call webhooks and takes their media WebSockets
  (Twilio Media Streams, Telnyx and Plivo media streaming) at ``/{provider}/voice`` and
  ``/{provider}/media``, bridging each call to a :class:`fastvoice.realtime.Session`;
- the bridge core (:func:`bridge_call`, :class:`Call`, the :class:`CallerTransport` seam) joins any
  caller's audio to a session: audio stays native (μ-law passes straight through to an
  ``audio/pcmu`` session), outbound frames are paced in Rust, marks tell what the caller heard;
- the protocol modules (``twilio``, ``telnyx``, ``plivo``) parse and build each provider's messages,
  XML answers and request signatures;
- ``sip``: OpenAI's own SIP endpoint: the ``realtime.call.incoming`` webhook verified, calls accepted
  with the agent's session config (or rejected, transferred, hung up), and a session attached by
  ``call_id`` so tools and handoffs run here while the audio stays between the trunk and OpenAI.

``PhoneServer`` needs aiohttp (the ``phone`` extra); the rest does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastvoice.telephony._dialect import CallDtmf, CallEvent, CallStart, CallStop, Dialect, Framing
from fastvoice.telephony._socket import UpgradeError, take_over
from fastvoice.telephony.bridge import Call, CallerTransport, MediaStreamCaller, bridge_call
from fastvoice.telephony.plivo import PlivoProtocolError
from fastvoice.telephony.sip import (
    IncomingCall,
    SipCallError,
    SipCalls,
    WebhookVerificationError,
    make_sip_handler,
    verify_webhook,
)
from fastvoice.telephony.telnyx import TelnyxProtocolError
from fastvoice.telephony.twilio import TwilioProtocolError

if TYPE_CHECKING:
    from fastvoice.telephony.server import PhoneServer

__all__ = [
    "Call",
    "CallDtmf",
    "CallEvent",
    "CallStart",
    "CallStop",
    "CallerTransport",
    "Dialect",
    "Framing",
    "IncomingCall",
    "MediaStreamCaller",
    "PhoneServer",
    "PlivoProtocolError",
    "SipCallError",
    "SipCalls",
    "TelnyxProtocolError",
    "TwilioProtocolError",
    "UpgradeError",
    "WebhookVerificationError",
    "bridge_call",
    "make_sip_handler",
    "take_over",
    "verify_webhook",
]


def __getattr__(name: str) -> Any:
    if name == "PhoneServer":  # imported on use: it needs aiohttp
        from fastvoice.telephony.server import PhoneServer

        return PhoneServer
    raise AttributeError(f"module 'fastvoice.telephony' has no attribute {name!r}")
