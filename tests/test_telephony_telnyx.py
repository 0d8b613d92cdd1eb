"""The Telnyx Media Streaming protocol layer: every frame Telnyx documents parsed (snake_case, counters
as strings, the RTP payload as exact bytes), malformed frames as a typed error naming the field, the
outbound frames and the dialect's framing byte for byte, the TeXML answer, and Ed25519 webhook
signatures."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from fastvoice import audio
from fastvoice.telephony import telnyx
from fastvoice.telephony._dialect import CallDtmf, CallStart, CallStop
from fastvoice.telephony.telnyx import TelnyxDialect, TelnyxProtocolError
from hypothesis import given
from hypothesis import strategies as st

# The identifiers of Telnyx's own examples.
SID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CCID = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"


def frame(**data: object) -> str:
    return json.dumps(data)


def start_frame(encoding: str = "PCMU", rate: int = 8000, channels: int = 1) -> str:
    """The start frame of Telnyx's AsyncAPI reference."""
    return frame(
        event="start",
        sequence_number="1",
        stream_id=SID,
        start={
            "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
            "call_control_id": CCID,
            "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
            "from": "+13122010094",
            "to": "+13122123456",
            "tags": ["TAG1", "TAG2"],
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
            "custom_parameters": {"customer_id": "customer_123"},
            "media_format": {"encoding": encoding, "sample_rate": rate, "channels": channels},
        },
    )


def test_the_frames_telnyx_sends() -> None:
    assert telnyx.parse_message(frame(event="connected", version="1.0.0")) == telnyx.Connected("1.0.0")
    connected = telnyx.parse_message(
        frame(event="connected", version="1.0.0", connected={"x-telnyx-streaming-auth-token": "tok"})
    )
    assert isinstance(connected, telnyx.Connected) and connected.auth_token == "tok"
    assert "tok" not in repr(connected)  # a credential stays out of logs
    assert telnyx.parse_message(start_frame()) == telnyx.Start(
        SID,
        CCID,
        "PCMU",
        8000,
        1,
        "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "3E6F995F-85F7-4705-9741-53B116D28237",
        "+13122010094",
        "+13122123456",
        "aGF2ZSBhIG5pY2UgZGF5ID1d",
        ("TAG1", "TAG2"),
        {"customer_id": "customer_123"},
        1,
    )
    ulaw = audio.ulaw_encode(audio.to_pcm16(audio.from_pcm16(bytes(320), "float32")))
    media = telnyx.parse_message(
        frame(
            event="media",
            sequence_number="4",
            stream_id=SID,
            media={
                "track": "inbound",
                "chunk": "2",
                "timestamp": "5",
                "payload": base64.b64encode(ulaw).decode(),
            },
        )
    )
    assert media == telnyx.Media(SID, bytes(ulaw), "inbound", 2, 5, 4)
    assert telnyx.parse_message(
        frame(event="mark", sequence_number="5", stream_id=SID, mark={"name": "r1-3"})
    ) == telnyx.Mark(SID, "r1-3", 5)
    assert telnyx.parse_message(
        frame(
            event="dtmf",
            sequence_number="6",
            stream_id=SID,
            occurred_at="2024-01-01T00:00:00Z",
            dtmf={"digit": "#"},
        )
    ) == telnyx.Dtmf(SID, "#", 6)
    assert telnyx.parse_message(
        frame(
            event="stop", sequence_number="7", stream_id=SID, stop={"user_id": "u", "call_control_id": CCID}
        )
    ) == telnyx.Stop(SID, CCID, 7)
    assert telnyx.parse_message(
        frame(
            event="error",
            sequence_number="8",
            stream_id=SID,
            payload={
                "code": 100003,
                "title": "malformed_frame",
                "detail": "The received frame was not parsable",
            },
        )
    ) == telnyx.Error(SID, 100003, "malformed_frame", "The received frame was not parsable", 8)
    # Telnyx sends null for what a call does not have; an unknown event is ignored.
    start = json.loads(start_frame())
    start["start"].update({"from": None, "custom_parameters": None, "tags": None})
    parsed = telnyx.parse_message(json.dumps(start))
    assert isinstance(parsed, telnyx.Start) and (parsed.from_, parsed.custom_parameters, parsed.tags) == (
        "",
        {},
        (),
    )
    assert telnyx.parse_message(frame(event="future-thing", stream_id=SID)) is None


def test_outbound_frames_match_the_documented_shapes() -> None:
    pcm = bytes(range(256)) * 2
    sent = json.loads(telnyx.media_message(pcm))
    assert sent == {"event": "media", "media": {"payload": base64.b64encode(pcm).decode()}}
    assert json.loads(telnyx.mark_message("m1")) == {"event": "mark", "mark": {"name": "m1"}}
    assert json.loads(telnyx.clear_message()) == {"event": "clear"}


def test_the_dialect_frames_exactly_what_the_builders_send() -> None:
    dialect = TelnyxDialect()
    assert dialect.name == "telnyx"
    start = dialect.parse(start_frame())
    assert start == CallStart("telnyx", SID, CCID, "audio/pcmu", 8000, {"customer_id": "customer_123"})
    framing = dialect.framing(start)
    assert (framing.media_event, framing.ack_event) == ("media", "mark")
    filled = json.loads(framing.media_prefix + "QUJD" + framing.media_suffix)
    assert (
        filled == {"event": "media", "media": {"payload": "QUJD"}} == json.loads(telnyx.media_message(b"ABC"))
    )
    assert json.loads(framing.mark_prefix + "QUJD" + framing.mark_suffix) == {
        "event": "mark",
        "mark": {"name": "QUJD"},
    }
    assert json.loads(framing.clear) == {"event": "clear"}
    # What the native stream reads itself, the dialect leaves alone; the call's events come through.
    assert dialect.parse(frame(event="media", stream_id=SID, media={"payload": "//8="})) is None
    assert dialect.parse(frame(event="mark", stream_id=SID, mark={"name": "x"})) is None
    assert dialect.parse(frame(event="dtmf", stream_id=SID, dtmf={"digit": "7"})) == CallDtmf("7")
    assert dialect.parse(frame(event="stop", stream_id=SID, stop={"call_control_id": CCID})) == CallStop(
        "stop"
    )
    assert dialect.parse(frame(event="connected", version="1.0.0")) is None


def test_the_dialect_maps_encodings_and_refuses_what_it_cannot_carry() -> None:
    dialect = TelnyxDialect()
    pcma = dialect.parse(start_frame("PCMA"))
    assert isinstance(pcma, CallStart) and pcma.encoding == "audio/pcma"
    l16 = dialect.parse(start_frame("L16", 16000))
    assert isinstance(l16, CallStart) and (l16.encoding, l16.sample_rate) == ("audio/pcm", 16000)
    assert telnyx.L16_BYTE_ORDER == "big"  # RTP L16 is network byte order
    for bad, field in [
        (start_frame("OPUS"), "encoding"),
        (start_frame("PCMU", 16000), "sample_rate"),
        (start_frame("L16", 16000, 2), "channels"),
    ]:
        with pytest.raises(TelnyxProtocolError, match=field):
            dialect.parse(bad)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (frame(stream_id=SID), "'event'"),
        (frame(event="media", stream_id=SID), "'media'"),
        (frame(event="media", stream_id=SID, media={"payload": "!!!"}), "media.payload"),
        (frame(event="media", stream_id=7, media={"payload": "AAAA"}), "'stream_id'"),
        (frame(event="media", stream_id=SID, media={"payload": "AAAA", "chunk": "x"}), "media.chunk"),
        (frame(event="media", stream_id=SID, media={"payload": "AAAA", "timestamp": 1.5}), "media.timestamp"),
        (frame(event="mark", stream_id=SID, mark={}), "mark.name"),
        (frame(event="dtmf", stream_id=SID, dtmf={"digit": 7}), "dtmf.digit"),
        (frame(event="start", start={"call_control_id": CCID, "media_format": {}}), "'stream_id'"),
        (frame(event="start", stream_id=SID, start={"call_control_id": CCID}), "start.media_format"),
        (
            frame(event="start", stream_id=SID, start={"media_format": {"encoding": "PCMU"}}),
            "start.call_control_id",
        ),
        (
            frame(
                event="start",
                stream_id=SID,
                start={"call_control_id": CCID, "media_format": {"encoding": "PCMU"}, "tags": "x"},
            ),
            "start.tags",
        ),
        (
            frame(
                event="start", stream_id=SID, start={"call_control_id": CCID, "media_format": {"encoding": 1}}
            ),
            "start.media_format.encoding",
        ),
        (frame(event="connected", connected={"x-telnyx-streaming-auth-token": 1}), "auth-token"),
        (frame(event="error", payload={"code": "E1"}), "payload.code"),
        (frame(event="stop", stop=[]), "'stop'"),
        (frame(event="connected", sequence_number=True), "sequence_number"),
    ],
)
def test_malformed_frames_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(TelnyxProtocolError, match=field):
        telnyx.parse_message(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_events = st.sampled_from(["connected", "start", "media", "mark", "dtmf", "stop", "error", "other"])


@given(st.one_of(st.text(), st.binary(), st.dictionaries(st.text(), _json)))
def test_any_frame_parses_or_raises_the_typed_error(data: object) -> None:
    raw = json.dumps(data) if isinstance(data, dict) else data
    for parse in (telnyx.parse_message, TelnyxDialect().parse):
        try:
            parse(raw)  # type: ignore[arg-type]
        except TelnyxProtocolError:
            pass


@given(
    _events,
    st.dictionaries(
        st.sampled_from(
            ["stream_id", "sequence_number", "start", "media", "mark", "dtmf", "stop", "payload", "connected"]
        ),
        _json,
    ),
)
def test_frames_of_known_events_parse_or_raise_the_typed_error(event: str, body: dict[str, object]) -> None:
    """The fuzz above rarely hits a real event name; this one always does, with mistyped members."""
    try:
        TelnyxDialect().parse(json.dumps({**body, "event": event}))
    except TelnyxProtocolError:
        pass


def test_texml_connects_the_call_to_a_bidirectional_rtp_stream() -> None:
    xml = telnyx.texml_connect_stream(
        "wss://example.com/telnyx?a=1&b=2",
        {"agent": 'a"b<c'},
        codec="PCMA",
        name="agent",
        status_callback="https://example.com/s",
    )
    root = ET.fromstring(xml)
    stream = root.find("Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.attrib == {
        "url": "wss://example.com/telnyx?a=1&b=2",
        "track": "inbound_track",
        "codec": "PCMA",
        "bidirectionalMode": "rtp",
        "bidirectionalCodec": "PCMA",
        "bidirectionalSamplingRate": "8000",
        "name": "agent",
        "statusCallback": "https://example.com/s",
    }
    param = stream.find("Parameter")
    assert param is not None and (param.get("name"), param.get("value")) == ("agent", 'a"b<c')
    plain = ET.fromstring(telnyx.texml_connect_stream("ws://127.0.0.1:8080/m")).find("Connect/Stream")
    assert plain is not None and plain.get("bidirectionalCodec") == "PCMU" and list(plain) == []
    with pytest.raises(ValueError, match="wss://"):
        telnyx.texml_connect_stream("https://example.com/media")
    with pytest.raises(ValueError, match="codec"):
        telnyx.texml_connect_stream("wss://example.com/m", codec="L16")


def test_webhook_signatures_are_ed25519_over_timestamp_bar_body() -> None:
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization

    private = ed25519.Ed25519PrivateKey.generate()
    public = base64.b64encode(
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    body = b'{"data":{"event_type":"streaming.started","payload":{"call_control_id":"v3:x"}}}'
    stamp = "1700000000"
    sig = base64.b64encode(private.sign(stamp.encode() + b"|" + body)).decode()
    assert telnyx.valid_signature(public, sig, stamp, body, now=1700000100)
    # Not the body, not the timestamp, not in time, not this key, or missing: refused, never raised.
    assert not telnyx.valid_signature(public, sig, stamp, body.replace(b"v3:x", b"v3:y"), now=1700000100)
    assert not telnyx.valid_signature(public, sig, "1700000001", body, now=1700000100)
    assert not telnyx.valid_signature(public, sig, stamp, body, now=1700000000 + 301)
    other = base64.b64encode(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    assert not telnyx.valid_signature(other, sig, stamp, body, now=1700000100)
    assert not telnyx.valid_signature(public, None, stamp, body)
    assert not telnyx.valid_signature(public, sig, None, body)
    assert not telnyx.valid_signature(public, "not base64!", stamp, body, now=1700000100)
    assert not telnyx.valid_signature(public, sig, "yesterday", body, now=1700000100)
    assert not telnyx.valid_signature("c2hvcnQ=", sig, stamp, body, now=1700000100)  # a 5-byte key
