"""Plivo Audio Streaming, the WebSocket protocol of the `<Stream>` XML element: what Plivo sends
(`start`, `media`, `dtmf`, `playedStream`, `clearedAudio`) as frozen dataclasses, what a server sends
back on a bidirectional stream (`playAudio`, `checkpoint`, `clearAudio`), the XML answer that opens one,
and `X-Plivo-Signature-V3` checks.

Where Plivo differs from Twilio: outbound audio is `playAudio`, which names its own `contentType` and
`sampleRate` and carries no stream id; a mark is a `checkpoint` whose acknowledgement `playedStream`
carries the name at the top level (not inside a `mark` object); a clear is acknowledged with
`clearedAudio`; the stream's end is not a WebSocket message (Plivo reports it to the XML's
`statusCallbackUrl` and closes the socket). A `stop` frame is still understood, should one arrive.
Encodings are `audio/x-mulaw` (8 kHz) and `audio/x-l16` (8 or 16 kHz; Plivo's pages call it "raw
audio" and give no byte order). The `<Stream>` default is L16, so `xml_stream` always names one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from fastvoice.telephony._dialect import CallDtmf, CallEvent, CallStart, CallStop, Framing
from fastvoice.telephony._fields import Fields

__all__ = [
    "ClearedAudio",
    "Dtmf",
    "Media",
    "PlayedStream",
    "PlivoDialect",
    "PlivoMessage",
    "PlivoProtocolError",
    "Start",
    "Stop",
    "checkpoint_message",
    "clear_audio_message",
    "parse_message",
    "play_audio_message",
    "signature_v3",
    "valid_signature_v3",
    "xml_stream",
]


class PlivoProtocolError(ValueError):
    """A Plivo Audio Streaming frame that is not what the protocol defines (bad JSON, a missing or
    mistyped field, a payload that is not base64, an encoding the bridge cannot carry)."""


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata; `encoding` is "audio/x-mulaw" or "audio/x-l16". `extra_headers` is the
    raw string of the XML's `extraHeaders`, `parameters` its name=value pairs."""

    stream_id: str
    call_id: str
    account_id: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    extra_headers: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """One chunk of the caller's audio: `payload` is the decoded bytes; `timestamp` is Unix time in
    milliseconds (a string on the wire); `chunk` counts the track's chunks."""

    stream_id: str
    payload: bytes
    track: str
    chunk: int | None
    timestamp: int | None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_id: str
    digit: str
    track: str = "inbound"
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class PlayedStream:
    """The audio sent before the checkpoint `name` has been played to the caller."""

    stream_id: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class ClearedAudio:
    """Plivo dropped the audio it had buffered, after a `clearAudio`."""

    stream_id: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream ended (not in Plivo's protocol reference; parsed in case it is sent)."""

    stream_id: str
    call_id: str = ""
    sequence_number: int | None = None


PlivoMessage = Start | Media | Dtmf | PlayedStream | ClearedAudio | Stop


_f = Fields(PlivoProtocolError)
_obj, _str, _int = _f.obj, _f.text, _f.integer


def _header_pairs(raw: str) -> dict[str, str]:
    """`extraHeaders` as the XML gives it ("a=1,b=2"); Plivo's start example joins with ";"."""
    pairs = (part.split("=", 1) for part in re.split(r"[;,]", raw) if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs if k.strip()}


def _start(data: Mapping[str, Any], seq: int | None) -> Start:
    start = _obj(data, "start")
    fmt = _obj(start, "mediaFormat", "start.")
    tracks = start.get("tracks", ["inbound"])
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise PlivoProtocolError(f"'start.tracks' must be a list of strings, got {tracks!r}")
    rate = _int(fmt, "sampleRate", "start.mediaFormat.")
    headers = _str(data, "extra_headers", "", "")
    return Start(
        _str(start, "streamId", "start."),
        _str(start, "callId", "start."),
        _str(start, "accountId", "start.", ""),
        tuple(tracks),
        _str(fmt, "encoding", "start.mediaFormat."),
        rate if rate is not None else 8000,
        headers,
        _header_pairs(headers),
        seq,
    )


def parse_message(raw: str | bytes) -> PlivoMessage | None:
    """One WebSocket text frame from Plivo; None for an event type this module does not know (ignore
    it). Raises `PlivoProtocolError` naming the field."""
    data = _f.load(raw)
    event = _str(data, "event", "")
    seq = _int(data, "sequenceNumber", "")
    if event == "media":
        media = _obj(data, "media")
        payload = _f.base64(media, "payload", "media.")
        return Media(
            _str(data, "streamId", "", ""),
            payload,
            _str(media, "track", "media.", "inbound"),
            _int(media, "chunk", "media."),
            _int(media, "timestamp", "media."),
            seq,
        )
    if event == "start":
        return _start(data, seq)
    # Plivo's support pages name the checkpoint acknowledgement "played"; its protocol reference
    # (and every stream seen) says "playedStream". Both mean the same.
    if event in ("playedStream", "played"):
        return PlayedStream(_str(data, "streamId", "", ""), _str(data, "name", ""), seq)
    if event == "dtmf":
        dtmf = _obj(data, "dtmf")
        return Dtmf(
            _str(data, "streamId", "", ""),
            _str(dtmf, "digit", "dtmf."),
            _str(dtmf, "track", "dtmf.", "inbound"),
            seq,
        )
    if event == "clearedAudio":
        return ClearedAudio(_str(data, "streamId", "", ""), seq)
    if event == "stop":
        stop = data.get("stop") or {}
        if not isinstance(stop, Mapping):
            raise PlivoProtocolError("'stop' must be an object")
        return Stop(
            _str(data, "streamId", "", _str(stop, "streamId", "stop.", "")),
            _str(stop, "callId", "stop.", ""),
            seq,
        )
    return None


#: What the bridge carries: `contentType` -> (Realtime encoding, the rates Plivo allows).
_FORMATS: dict[str, tuple[str, tuple[int, ...]]] = {
    "audio/x-mulaw": ("audio/pcmu", (8000,)),
    "audio/x-l16": ("audio/pcm", (8000, 16000)),
}
_CONTENT_TYPES = {encoding: content for content, (encoding, _) in _FORMATS.items()}


def _check_format(content_type: str, sample_rate: int) -> None:
    fmt = _FORMATS.get(content_type)
    if fmt is None:
        raise ValueError(f"content type must be one of {tuple(_FORMATS)}, got {content_type!r}")
    if sample_rate not in fmt[1]:
        raise ValueError(f"{content_type} plays at {fmt[1]} Hz, not {sample_rate!r}")


def play_audio_message(audio: bytes, content_type: str = "audio/x-mulaw", sample_rate: int = 8000) -> str:
    """Outbound audio on a bidirectional stream. Plivo asks that one stream keep one format."""
    _check_format(content_type, sample_rate)
    media = {
        "contentType": content_type,
        "sampleRate": sample_rate,
        "payload": base64.b64encode(audio).decode(),
    }
    return json.dumps({"event": "playAudio", "media": media})


def checkpoint_message(stream_id: str, name: str) -> str:
    """Asks Plivo to send `playedStream` with `name` once the audio sent so far has played."""
    return json.dumps({"event": "checkpoint", "streamId": stream_id, "name": name})


def clear_audio_message(stream_id: str) -> str:
    """Drops the audio Plivo has buffered and not yet played (barge-in); Plivo answers `clearedAudio`."""
    return json.dumps({"event": "clearAudio", "streamId": stream_id})


_HEADER_TOKEN = re.compile(r"[A-Za-z0-9]+")


def xml_stream(
    url: str,
    *,
    content_type: str = "audio/x-mulaw",
    sample_rate: int = 8000,
    extra_headers: Mapping[str, str] | None = None,
    keep_call_alive: bool = True,
    stream_timeout: int | None = None,
    status_callback_url: str | None = None,
) -> str:
    """The Plivo XML answer that connects a call to a bidirectional stream at `url` (`wss://...`),
    inbound track only (Plivo's rule for bidirectional streams). `keep_call_alive` makes the stream
    the only element run until it ends. `extra_headers` (letters and digits only, 512 bytes at most)
    arrive in the start frame's `extra_headers`."""
    if not url.startswith(("wss://", "ws://")):
        raise ValueError(f"a Plivo stream URL must be ws:// or wss://, got {url!r}")
    _check_format(content_type, sample_rate)
    attrs = {
        "bidirectional": "true",
        "audioTrack": "inbound",
        "keepCallAlive": "true" if keep_call_alive else "false",
        "contentType": f"{content_type};rate={sample_rate}",
    }
    if extra_headers:
        for k, v in extra_headers.items():
            if not (_HEADER_TOKEN.fullmatch(k) and _HEADER_TOKEN.fullmatch(v)):
                raise ValueError(f"extra header {k!r}={v!r}: Plivo allows only [A-Za-z0-9]")
        joined = ",".join(f"{k}={v}" for k, v in extra_headers.items())
        if len(joined) > 512:
            raise ValueError(f"extra headers are {len(joined)} bytes; Plivo allows 512")
        attrs["extraHeaders"] = joined
    if stream_timeout is not None:
        if stream_timeout <= 0:
            raise ValueError(f"stream_timeout must be a positive number of seconds, got {stream_timeout}")
        attrs["streamTimeout"] = str(stream_timeout)
    if status_callback_url is not None:
        attrs["statusCallbackUrl"] = status_callback_url
    head = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Stream {head}>{escape(url)}</Stream></Response>'


def _sorted_query(query: Mapping[str, list[str]]) -> str:
    return "&".join(f"{k}={v}" for k in sorted(query) for v in sorted(query[k]))


def signature_v3(
    auth_token: str, url: str, nonce: str, params: Mapping[str, str] | None = None, method: str = "POST"
) -> str:
    """Plivo's V3 request signature: base64 HMAC-SHA256, keyed by the auth token, of the request URL
    with its query sorted, then (POST) every form parameter as name + value sorted by name, then "."
    and the nonce (`X-Plivo-Signature-V3-Nonce`). GET parameters are part of the query instead. The
    separators are those of Plivo's SDKs: "?" before the query, "." between it and the form."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    form = dict(params or {})
    if method.upper() == "GET":
        for k, v in form.items():
            query.setdefault(k, []).append(v)
        form = {}
    signed = base
    qs = _sorted_query(query)
    if form:
        signed += "?" + qs + ("." if qs else "") + "".join(f"{k}{form[k]}" for k in sorted(form))
    elif qs:
        signed += "?" + qs
    digest = hmac.new(auth_token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature_v3(
    auth_token: str,
    header: str | None,
    nonce: str | None,
    url: str,
    params: Mapping[str, str] | None = None,
    method: str = "POST",
) -> bool:
    """Whether `header` (`X-Plivo-Signature-V3`, or `X-Plivo-Signature-Ma-V3` with the main account's
    token) signs this request. Plivo sends one signature per active auth token, comma-separated; any
    match is enough. Constant-time; False when the header or nonce is missing."""
    if not header or not nonce:
        return False
    expected = signature_v3(auth_token, url, nonce, params, method).encode()
    found = False
    for candidate in header.split(","):
        found |= hmac.compare_digest(expected, candidate.strip().encode())
    return found


class PlivoDialect:
    """Plivo Audio Streaming as the bridge uses it (see `fastvoice.telephony._dialect`): marks are
    checkpoints acknowledged by `playedStream` (name at the top level), outbound audio is `playAudio`
    in the stream's own format."""

    name = "plivo"

    def parse(self, text: str) -> CallEvent | None:
        msg = parse_message(text)
        if isinstance(msg, Start):
            fmt = _FORMATS.get(msg.encoding)
            if fmt is None:
                raise PlivoProtocolError(f"unsupported 'start.mediaFormat.encoding' {msg.encoding!r}")
            if msg.sample_rate not in fmt[1]:
                raise PlivoProtocolError(
                    f"'start.mediaFormat.sampleRate' {msg.sample_rate} is not in {fmt[1]} for {msg.encoding}"
                )
            return CallStart("plivo", msg.stream_id, msg.call_id, fmt[0], msg.sample_rate, msg.parameters)
        if isinstance(msg, Dtmf):
            return CallDtmf(msg.digit)
        if isinstance(msg, Stop):
            return CallStop("stop")
        return None

    def framing(self, start: CallStart) -> Framing:
        content_type = _CONTENT_TYPES.get(start.encoding)
        if content_type is None:
            raise ValueError(f"Plivo streams carry {tuple(_CONTENT_TYPES)}, not {start.encoding!r}")
        _check_format(content_type, start.sample_rate)
        sid = json.dumps(start.stream_id)
        return Framing(
            media_prefix=(
                f'{{"event":"playAudio","media":{{"contentType":"{content_type}",'
                f'"sampleRate":{start.sample_rate},"payload":"'
            ),
            media_suffix='"}}',
            mark_prefix=f'{{"event":"checkpoint","streamId":{sid},"name":"',
            mark_suffix='"}',
            clear=clear_audio_message(start.stream_id),
            ack_event="playedStream",
        )
