"""Twilio Media Streams, the public WebSocket protocol of `<Connect><Stream>`: what Twilio sends
(`connected`, `start`, `media`, `mark`, `dtmf`, `stop`) as frozen dataclasses, what a server sends back
(`media`, `mark`, `clear`), the TwiML that opens a stream, and `X-Twilio-Signature` checks.

Audio stays bytes: a `media` message's payload (base64 μ-law, 8 kHz mono) is decoded to bytes and
never turned into samples here, so a session speaking `audio/pcmu` can pass it straight through.
Anything malformed raises `TwilioProtocolError` naming the field, never a KeyError from deep inside.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from fastvoice.telephony._dialect import CallDtmf, CallEvent, CallStart, CallStop, Framing
from fastvoice.telephony._fields import Fields

__all__ = [
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "TwilioDialect",
    "TwilioMessage",
    "TwilioProtocolError",
    "clear_message",
    "mark_message",
    "media_message",
    "parse_message",
    "signature",
    "twiml_connect_stream",
    "valid_signature",
]


class TwilioProtocolError(ValueError):
    """A Media Streams message that is not what the protocol defines (bad JSON, a missing or
    mistyped field, a payload that is not base64)."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata; `encoding` is e.g. "audio/x-mulaw", `sample_rate` 8000."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """One chunk of the caller's audio: `payload` is the decoded μ-law bytes; `timestamp` is the
    milliseconds from the start of the stream."""

    stream_sid: str
    payload: bytes
    track: str
    chunk: int | None
    timestamp: int | None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio played the audio sent before the mark `name` (bidirectional streams)."""

    stream_sid: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str
    track: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    call_sid: str
    account_sid: str
    sequence_number: int | None = None


TwilioMessage = Connected | Start | Media | Mark | Dtmf | Stop


_f = Fields(TwilioProtocolError, null_is_default=False)
_str, _int = _f.text, _f.integer


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _f.obj(data, key)


def parse_message(raw: str | bytes) -> TwilioMessage | None:
    """One WebSocket text frame from Twilio; None for an event type this protocol version does not
    define (ignore it, as Twilio asks of its clients). Raises `TwilioProtocolError`."""
    data = _f.load(raw)
    event = _str(data, "event", "")
    seq = _int(data, "sequenceNumber", "")
    if event == "connected":
        return Connected(_str(data, "protocol", "", "Call"), _str(data, "version", "", ""))
    if event == "media":
        media = _obj(data, "media")
        payload = _f.base64(media, "payload", "media.")
        return Media(
            _str(data, "streamSid", ""),
            payload,
            _str(media, "track", "media.", "inbound"),
            _int(media, "chunk", "media."),
            _int(media, "timestamp", "media."),
            seq,
        )
    if event == "start":
        start = _obj(data, "start")
        fmt = _obj(start, "mediaFormat")
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise TwilioProtocolError(f"'start.tracks' must be a list of strings, got {tracks!r}")
        params = start.get("customParameters") or {}
        if not isinstance(params, Mapping):
            raise TwilioProtocolError("'start.customParameters' must be an object")
        rate = _int(fmt, "sampleRate", "start.mediaFormat.")
        channels = _int(fmt, "channels", "start.mediaFormat.")
        return Start(
            _str(start, "streamSid", "start.", data.get("streamSid")),
            _str(start, "callSid", "start."),
            _str(start, "accountSid", "start.", ""),
            tuple(tracks),
            _str(fmt, "encoding", "start.mediaFormat."),
            rate if rate is not None else 8000,
            channels if channels is not None else 1,
            {str(k): str(v) for k, v in params.items()},
            seq,
        )
    if event == "mark":
        return Mark(_str(data, "streamSid", ""), _str(_obj(data, "mark"), "name", "mark."), seq)
    if event == "dtmf":
        dtmf = _obj(data, "dtmf")
        return Dtmf(
            _str(data, "streamSid", ""),
            _str(dtmf, "digit", "dtmf."),
            _str(dtmf, "track", "dtmf.", "inbound_track"),
            seq,
        )
    if event == "stop":
        stop = data.get("stop") or {}
        if not isinstance(stop, Mapping):
            raise TwilioProtocolError("'stop' must be an object")
        return Stop(
            _str(data, "streamSid", ""),
            _str(stop, "callSid", "stop.", ""),
            _str(stop, "accountSid", "stop.", ""),
            seq,
        )
    return None


def media_message(stream_sid: str, ulaw: bytes) -> str:
    """Outbound audio: μ-law 8 kHz mono bytes for the caller."""
    payload = base64.b64encode(ulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    """Asks Twilio to send `mark` back when the audio sent so far has been played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drops the audio Twilio has buffered and not yet played (barge-in); pending marks come back."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def twiml_connect_stream(url: str, parameters: Mapping[str, str] | None = None) -> str:
    """The TwiML answer to a call webhook that connects it to a bidirectional stream at `url`
    (`wss://...`), with optional custom parameters (they arrive in `start.customParameters`)."""
    if not url.startswith(("wss://", "ws://")):
        raise ValueError(f"a Media Streams URL must be ws:// or wss://, got {url!r}")
    params = "".join(
        f"<Parameter name={quoteattr(str(k))} value={quoteattr(str(v))}/>"
        for k, v in (parameters or {}).items()
    )
    stream = (
        f"<Stream url={quoteattr(url)}>{params}</Stream>" if params else f"<Stream url={quoteattr(url)}/>"
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>{stream}</Connect></Response>'


def signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's request signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed
    by every POST parameter as name + value, sorted by name."""
    data = url + "".join(f"{k}{v}" for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(
    auth_token: str, header: str | None, url: str, params: Mapping[str, str] | None = None
) -> bool:
    """Whether `header` (`X-Twilio-Signature`) signs this request; constant-time, False when missing."""
    if not header:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), header.strip())


#: Twilio's `mediaFormat.encoding` names, as Realtime encodings.
_ENCODINGS = {"audio/x-mulaw": "audio/pcmu", "audio/x-alaw": "audio/pcma"}


class TwilioDialect:
    """Twilio Media Streams as the bridge uses it (see `fastvoice.telephony._dialect`)."""

    name = "twilio"

    def parse(self, text: str) -> CallEvent | None:
        msg = parse_message(text)
        if isinstance(msg, Start):
            encoding = _ENCODINGS.get(msg.encoding)
            if encoding is None:
                raise TwilioProtocolError(f"unsupported 'start.mediaFormat.encoding' {msg.encoding!r}")
            return CallStart(
                "twilio", msg.stream_sid, msg.call_sid, encoding, msg.sample_rate, msg.custom_parameters
            )
        if isinstance(msg, Dtmf):
            return CallDtmf(msg.digit)
        if isinstance(msg, Stop):
            return CallStop("stop")
        return None

    def framing(self, start: CallStart) -> Framing:
        sid = json.dumps(start.stream_id)
        return Framing(
            media_prefix=f'{{"event":"media","streamSid":{sid},"media":{{"payload":"',
            media_suffix='"}}',
            mark_prefix=f'{{"event":"mark","streamSid":{sid},"mark":{{"name":"',
            mark_suffix='"}}',
            clear=clear_message(start.stream_id),
        )
