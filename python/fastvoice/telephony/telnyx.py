"""Telnyx Media Streaming, the WebSocket protocol of `stream_url` (Call Control) and TeXML
`<Connect><Stream>`: what Telnyx sends (`connected`, `start`, `media`, `dtmf`, `mark`, `stop`, `error`)
as frozen dataclasses, what a server sends back on a bidirectional RTP stream (`media`, `mark`, `clear`),
the TeXML answer that opens one, and Ed25519 webhook signatures.

Where Telnyx differs from Twilio: fields are snake_case (`stream_id`, `sequence_number`,
`call_control_id`, `media_format.sample_rate`); `stream_id` is at the top level of every frame, never
inside `start`; what a server sends back carries no stream id at all (the socket is the stream);
encodings are RTP codec names (`PCMU`, `PCMA`, `L16`, ...). Audio is the base64 RTP payload without
its header, decoded to bytes and never turned into samples here.

`L16` is RTP's linear PCM, which RFC 3551 defines in network byte order (big-endian); Telnyx's pages do
not restate it. `L16_BYTE_ORDER` says so for whoever turns those bytes into samples.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from fastvoice.telephony._dialect import CallDtmf, CallEvent, CallStart, CallStop, Framing
from fastvoice.telephony._fields import Fields

__all__ = [
    "L16_BYTE_ORDER",
    "Connected",
    "Dtmf",
    "Error",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "TelnyxDialect",
    "TelnyxMessage",
    "TelnyxProtocolError",
    "clear_message",
    "mark_message",
    "media_message",
    "parse_message",
    "texml_connect_stream",
    "valid_signature",
]

#: Byte order of an `L16` payload (RTP linear PCM, RFC 3551 section 4.5.11).
L16_BYTE_ORDER = "big"


class TelnyxProtocolError(ValueError):
    """A Telnyx media-streaming frame that is not what the protocol defines (bad JSON, a missing or
    mistyped field, a payload that is not base64, an encoding the bridge cannot carry)."""


@dataclass(frozen=True, slots=True)
class Connected:
    """The first frame. `auth_token` is the `stream_auth_token` Telnyx was given, when one was
    (also sent as the `x-telnyx-streaming-auth-token` upgrade header); kept out of the repr."""

    version: str
    auth_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata; `encoding` is Telnyx's codec name ("PCMU", "PCMA", "L16", ...)."""

    stream_id: str
    call_control_id: str
    encoding: str
    sample_rate: int
    channels: int
    call_session_id: str = ""
    user_id: str = ""
    from_: str = ""
    to: str = ""
    client_state: str = ""
    tags: tuple[str, ...] = ()
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """One chunk of call audio: `payload` is the decoded RTP payload; `track` is "inbound" or
    "outbound"; `timestamp` in milliseconds. Telnyx does not promise order: `chunk` orders them."""

    stream_id: str
    payload: bytes
    track: str
    chunk: int | None
    timestamp: int | None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """The audio sent before the mark `name` has been played (or was cleared)."""

    stream_id: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_id: str
    digit: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    stream_id: str
    call_control_id: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """Telnyx reports a problem with the stream (e.g. a frame it could not use)."""

    stream_id: str
    code: int | None
    title: str
    detail: str
    sequence_number: int | None = None


TelnyxMessage = Connected | Start | Media | Mark | Dtmf | Stop | Error


_f = Fields(TelnyxProtocolError)
_obj, _opt_obj, _str, _int, _strings = _f.obj, _f.opt_obj, _f.text, _f.integer, _f.strings


def _start(data: Mapping[str, Any], seq: int | None) -> Start:
    start = _obj(data, "start")
    fmt = _obj(start, "media_format", "start.")
    params = _opt_obj(start, "custom_parameters", "start.")
    rate = _int(fmt, "sample_rate", "start.media_format.")
    channels = _int(fmt, "channels", "start.media_format.")
    return Start(
        _str(data, "stream_id", ""),
        _str(start, "call_control_id", "start."),
        _str(fmt, "encoding", "start.media_format."),
        rate if rate is not None else 8000,
        channels if channels is not None else 1,
        _str(start, "call_session_id", "start.", ""),
        _str(start, "user_id", "start.", ""),
        _str(start, "from", "start.", ""),
        _str(start, "to", "start.", ""),
        _str(start, "client_state", "start.", ""),
        _strings(start, "tags", "start."),
        {str(k): str(v) for k, v in params.items()},
        seq,
    )


def parse_message(raw: str | bytes) -> TelnyxMessage | None:
    """One WebSocket text frame from Telnyx; None for an event type this module does not know (ignore
    it). Raises `TelnyxProtocolError` naming the field."""
    data = _f.load(raw)
    event = _str(data, "event", "")
    seq = _int(data, "sequence_number", "")
    if event == "media":
        media = _obj(data, "media")
        payload = _f.base64(media, "payload", "media.")
        return Media(
            _str(data, "stream_id", "", ""),
            payload,
            _str(media, "track", "media.", "inbound"),
            _int(media, "chunk", "media."),
            _int(media, "timestamp", "media."),
            seq,
        )
    if event == "connected":
        connected = _opt_obj(data, "connected")
        token = connected.get("x-telnyx-streaming-auth-token")
        if token is not None and not isinstance(token, str):
            raise TelnyxProtocolError("'connected.x-telnyx-streaming-auth-token' must be a string")
        return Connected(_str(data, "version", "", ""), token)
    if event == "start":
        return _start(data, seq)
    if event == "mark":
        return Mark(_str(data, "stream_id", "", ""), _str(_obj(data, "mark"), "name", "mark."), seq)
    if event == "dtmf":
        return Dtmf(_str(data, "stream_id", "", ""), _str(_obj(data, "dtmf"), "digit", "dtmf."), seq)
    if event == "stop":
        stop = _opt_obj(data, "stop")
        return Stop(_str(data, "stream_id", "", ""), _str(stop, "call_control_id", "stop.", ""), seq)
    if event == "error":
        # Telnyx names the details `payload` ({code, title, detail}); every part is optional here.
        info = _opt_obj(data, "payload")
        return Error(
            _str(data, "stream_id", "", ""),
            _int(info, "code", "payload."),
            _str(info, "title", "payload.", ""),
            _str(info, "detail", "payload.", ""),
            seq,
        )
    return None


def media_message(payload: bytes) -> str:
    """Outbound audio on a bidirectional RTP stream, in the stream's `bidirectionalCodec`."""
    return json.dumps({"event": "media", "media": {"payload": base64.b64encode(payload).decode("ascii")}})


def mark_message(name: str) -> str:
    """Asks Telnyx to send `mark` back once the audio sent so far has played."""
    return json.dumps({"event": "mark", "mark": {"name": name}})


def clear_message() -> str:
    """Stops the audio playing and drops what is queued (barge-in); queued marks come back."""
    return json.dumps({"event": "clear"})


#: The `codec`/`bidirectionalCodec` values TeXML documents that the bridge can carry (TeXML lists
#: no L16, which only Call Control's `stream_bidirectional_codec` offers).
_TEXML_CODECS = ("PCMU", "PCMA")


def texml_connect_stream(
    url: str,
    parameters: Mapping[str, str] | None = None,
    *,
    codec: str = "PCMU",
    track: str = "inbound_track",
    name: str | None = None,
    status_callback: str | None = None,
) -> str:
    """The TeXML answer that connects a call to a bidirectional RTP stream at `url` (`wss://...`),
    G.711 at 8 kHz. `codec` ("PCMU" or "PCMA") is used both ways (`codec` for what Telnyx sends,
    `bidirectionalCodec` for what it plays), so the stream's `start.media_format` names what the
    server must send back. `parameters` arrive in `start.custom_parameters`."""
    if not url.startswith(("wss://", "ws://")):
        raise ValueError(f"a Telnyx stream URL must be ws:// or wss://, got {url!r}")
    if codec not in _TEXML_CODECS:
        raise ValueError(f"codec must be one of {_TEXML_CODECS}, got {codec!r}")
    attrs = {
        "url": url,
        "track": track,
        "codec": codec,
        "bidirectionalMode": "rtp",
        "bidirectionalCodec": codec,
        "bidirectionalSamplingRate": "8000",
    }
    if name is not None:
        attrs["name"] = name
    if status_callback is not None:
        attrs["statusCallback"] = status_callback
    head = "<Stream " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    params = "".join(
        f"<Parameter name={quoteattr(str(k))} value={quoteattr(str(v))}/>"
        for k, v in (parameters or {}).items()
    )
    stream = f"{head}>{params}</Stream>" if params else f"{head}/>"
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>{stream}</Connect></Response>'


def valid_signature(
    public_key: str,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a webhook came from Telnyx: `signature` (`telnyx-signature-ed25519`, base64) is
    Telnyx's Ed25519 signature of `timestamp + "|" + body` (`telnyx-timestamp`, Unix seconds; the
    raw request body, not re-serialized JSON), made with the key whose public half is `public_key`
    (base64, 32 bytes, from the Mission Control portal). False when anything is missing or
    malformed, or the timestamp is more than `tolerance` seconds away (replays). Needs the
    `cryptography` package."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:  # not a dependency of fastvoice: only this check needs it
        raise RuntimeError("Telnyx signature checks need the 'cryptography' package") from exc
    if not signature or not timestamp:
        return False
    try:
        sent = int(timestamp.strip())
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        raw = base64.b64decode(signature.strip(), validate=True)
    except ValueError:  # binascii.Error is one; so is a key that is not 32 bytes
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    try:
        key.verify(raw, timestamp.strip().encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True


#: Telnyx codec names the bridge carries, as Realtime encodings.
_ENCODINGS = {"PCMU": "audio/pcmu", "PCMA": "audio/pcma", "L16": "audio/pcm"}


class TelnyxDialect:
    """Telnyx Media Streaming as the bridge uses it (see `fastvoice.telephony._dialect`). Outbound
    frames carry no stream id; Telnyx plays them in the stream's `bidirectionalCodec`, which
    `texml_connect_stream` keeps equal to the inbound codec the start frame names."""

    name = "telnyx"

    def parse(self, text: str) -> CallEvent | None:
        msg = parse_message(text)
        if isinstance(msg, Start):
            encoding = _ENCODINGS.get(msg.encoding.upper())
            if encoding is None:
                raise TelnyxProtocolError(f"unsupported 'start.media_format.encoding' {msg.encoding!r}")
            if encoding != "audio/pcm" and msg.sample_rate != 8000:
                raise TelnyxProtocolError(
                    f"'start.media_format.sample_rate' must be 8000 for {msg.encoding}, got {msg.sample_rate}"
                )
            if msg.sample_rate <= 0 or msg.channels != 1:
                raise TelnyxProtocolError(
                    f"unsupported 'start.media_format' {msg.sample_rate} Hz x {msg.channels} channels"
                )
            return CallStart(
                "telnyx",
                msg.stream_id,
                msg.call_control_id,
                encoding,
                msg.sample_rate,
                msg.custom_parameters,
                big_endian=encoding == "audio/pcm" and L16_BYTE_ORDER == "big",
            )
        if isinstance(msg, Dtmf):
            return CallDtmf(msg.digit)
        if isinstance(msg, Stop):
            return CallStop("stop")
        return None

    def framing(self, start: CallStart) -> Framing:
        return Framing(
            media_prefix='{"event":"media","media":{"payload":"',
            media_suffix='"}}',
            mark_prefix='{"event":"mark","mark":{"name":"',
            mark_suffix='"}}',
            clear=clear_message(),
        )
