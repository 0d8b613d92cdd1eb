"""Phone calls bridged to realtime agents (issue 12, in progress).

So far: the Twilio Media Streams protocol (`fastvoice.telephony.twilio`): its messages parsed into
small frozen dataclasses and built back, its TwiML answer, and its request signatures. The bridge
core that joins a call to a `realtime.Session` comes next. OpenAI's own SIP endpoint
(`fastvoice.telephony.sip`): webhook verification, accepting/rejecting/transferring calls, and attaching a
`realtime.Session` to an accepted call.
"""

from fastvoice.telephony.sip import (
    IncomingCall,
    SipCallError,
    SipCalls,
    WebhookVerificationError,
    make_sip_handler,
    verify_webhook,
)
from fastvoice.telephony.twilio import TwilioProtocolError

__all__ = ["TwilioProtocolError"]
__all__ += [
    "IncomingCall",
    "SipCallError",
    "SipCalls",
    "WebhookVerificationError",
    "make_sip_handler",
    "verify_webhook",
]
