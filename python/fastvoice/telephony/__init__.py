"""Phone calls bridged to realtime agents (issue 12, in progress).

So far: the Twilio Media Streams protocol (`fastvoice.telephony.twilio`): its messages parsed into
small frozen dataclasses and built back, its TwiML answer, and its request signatures. The bridge
core that joins a call to a `realtime.Session` comes next.
"""

from fastvoice.telephony.twilio import TwilioProtocolError

__all__ = ["TwilioProtocolError"]
