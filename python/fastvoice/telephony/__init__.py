"""Phone calls bridged to realtime agents (issue 12, in progress).

So far: the media-stream protocols of Twilio (`fastvoice.telephony.twilio`), Telnyx
(`fastvoice.telephony.telnyx`) and Plivo (`fastvoice.telephony.plivo`): their messages parsed into
small frozen dataclasses and built back, their XML answers, and their request signatures. The bridge
core that joins a call to a `realtime.Session` comes next.
"""

from fastvoice.telephony.plivo import PlivoProtocolError
from fastvoice.telephony.telnyx import TelnyxProtocolError
from fastvoice.telephony.twilio import TwilioProtocolError

__all__ = ["PlivoProtocolError", "TelnyxProtocolError", "TwilioProtocolError"]
