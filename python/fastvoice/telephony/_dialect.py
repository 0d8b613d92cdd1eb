"""The seam between a phone provider's media-stream protocol and the bridge core.

Each provider module (``twilio``, ``telnyx``, ``plivo``) turns its messages into the few events the
bridge needs (:class:`CallStart`, :class:`CallDtmf`, :class:`CallStop`) and describes, as a
:class:`Framing`, how its outbound audio, marks and clears look on the wire. The framing is handed to
the native caller stream, which then builds every outbound media frame and reads every inbound media
frame and mark acknowledgement itself: the provider modules never see audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CallDtmf", "CallEvent", "CallStart", "CallStop", "Dialect", "Framing"]

#: Audio encodings a caller stream carries, by their Realtime names.
ENCODINGS = ("audio/pcmu", "audio/pcma", "audio/pcm")


@dataclass(frozen=True, slots=True)
class CallStart:
    """A media stream began. ``encoding`` is a Realtime name (``audio/pcmu``, ``audio/pcma`` or
    ``audio/pcm`` for 16-bit linear, little-endian unless ``big_endian``: RTP's L16), ``sample_rate`` the
    caller's rate (8000 on the phone network)."""

    provider: str
    stream_id: str
    call_id: str
    encoding: str = "audio/pcmu"
    sample_rate: int = 8000
    parameters: Mapping[str, str] = field(default_factory=dict)
    big_endian: bool = False


@dataclass(frozen=True, slots=True)
class CallDtmf:
    """The caller pressed a key (``0-9``, ``*``, ``#``, ``A-D``)."""

    digit: str


@dataclass(frozen=True, slots=True)
class CallStop:
    """The provider ended the stream (hang-up, transfer, or the call's end)."""

    reason: str = ""


CallEvent = CallStart | CallDtmf | CallStop


@dataclass(frozen=True, slots=True)
class Framing:
    """How a provider frames outbound audio and marks, and names the inbound events the native stream
    handles. Outbound frames are ``media_prefix + base64 + media_suffix`` and
    ``mark_prefix + name + mark_suffix``; the strings must be JSON up to and after the value (the value
    is never escaped: base64 and the stream's own mark names need none). Inbound, an event named
    ``media_event`` carries the caller's audio in a string member ``payload``, and one named
    ``ack_event`` acknowledges a mark, whose name is in a string member ``name``. With ``binary``
    (a browser), audio travels as raw binary frames both ways (no JSON, no base64) and the media
    strings are unused; marks and clears stay text."""

    media_prefix: str
    media_suffix: str
    mark_prefix: str
    mark_suffix: str
    clear: str
    media_event: str = "media"
    ack_event: str = "mark"
    binary: bool = False


class Dialect(Protocol):
    """A provider's media-stream protocol as the bridge uses it."""

    name: str

    def parse(self, text: str) -> CallEvent | None:
        """One inbound text frame: a bridge event, or None for anything the bridge ignores (including
        media and mark acknowledgements, which the native stream handles). Raises the provider's
        ``ValueError`` subclass on a malformed frame."""
        ...

    def framing(self, start: CallStart) -> Framing:
        """The outbound framing for the stream ``start`` opened."""
        ...
