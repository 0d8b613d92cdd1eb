"""The Twilio Media Streams protocol layer: every message Twilio sends parsed (counters as strings,
the μ-law payload as exact bytes), malformed frames as a typed error naming the field, outbound
messages, the TwiML answer, and request signatures against Twilio's documented example."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from fastvoice import audio
from fastvoice.telephony import twilio
from fastvoice.telephony.twilio import TwilioProtocolError
from hypothesis import given
from hypothesis import strategies as st

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


def frame(**data: object) -> str:
    return json.dumps(data)


def test_the_messages_twilio_sends() -> None:
    assert twilio.parse_message(
        frame(event="connected", protocol="Call", version="1.0.0")
    ) == twilio.Connected("Call", "1.0.0")
    start = twilio.parse_message(
        frame(
            event="start",
            sequenceNumber="1",
            streamSid=SID,
            start={
                "accountSid": "AC123",
                "streamSid": SID,
                "callSid": "CA456",
                "tracks": ["inbound", "outbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"agent": "billing"},
            },
        )
    )
    assert start == twilio.Start(
        SID, "CA456", "AC123", ("inbound", "outbound"), "audio/x-mulaw", 8000, 1, {"agent": "billing"}, 1
    )
    ulaw = audio.ulaw_encode(
        audio.to_pcm16(audio.resample(audio.from_pcm16(bytes(640), "float32"), 16000, 8000))
    )
    media = twilio.parse_message(
        frame(
            event="media",
            sequenceNumber="3",
            streamSid=SID,
            media={
                "track": "inbound",
                "chunk": "1",
                "timestamp": "5",
                "payload": base64.b64encode(ulaw).decode(),
            },
        )
    )
    assert media == twilio.Media(SID, bytes(ulaw), "inbound", 1, 5, 3)
    assert twilio.parse_message(
        frame(event="mark", sequenceNumber="4", streamSid=SID, mark={"name": "r1-3"})
    ) == (twilio.Mark(SID, "r1-3", 4))
    assert twilio.parse_message(
        frame(event="dtmf", streamSid=SID, sequenceNumber="5", dtmf={"track": "inbound_track", "digit": "7"})
    ) == twilio.Dtmf(SID, "7", "inbound_track", 5)
    assert twilio.parse_message(
        frame(
            event="stop", sequenceNumber="6", streamSid=SID, stop={"accountSid": "AC123", "callSid": "CA456"}
        )
    ) == twilio.Stop(SID, "CA456", "AC123", 6)
    # An event this version does not define is ignored, as Twilio asks.
    assert twilio.parse_message(frame(event="future-thing", streamSid=SID)) is None


def test_outbound_messages_round_trip() -> None:
    ulaw = bytes(range(256)) * 2
    sent = json.loads(twilio.media_message(SID, ulaw))
    assert sent == {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(ulaw).decode()}}
    echoed = twilio.parse_message(json.dumps(sent))
    assert isinstance(echoed, twilio.Media) and echoed.payload == ulaw
    assert json.loads(twilio.mark_message(SID, "m1")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "m1"},
    }
    assert json.loads(twilio.clear_message(SID)) == {"event": "clear", "streamSid": SID}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (frame(streamSid=SID), "'event'"),
        (frame(event="media", streamSid=SID), "'media'"),
        (frame(event="media", streamSid=SID, media={"payload": "!!!"}), "media.payload"),
        (frame(event="media", media={"payload": "AAAA"}), "'streamSid'"),
        (frame(event="media", streamSid=SID, media={"payload": "AAAA", "chunk": "x"}), "media.chunk"),
        (frame(event="mark", streamSid=SID, mark={}), "mark.name"),
        (frame(event="dtmf", streamSid=SID, dtmf={"digit": 7}), "dtmf.digit"),
        (frame(event="start", streamSid=SID, start={"callSid": "CA1"}), "'mediaFormat'"),
        (
            frame(
                event="start",
                start={"streamSid": SID, "callSid": "C", "tracks": "inbound", "mediaFormat": {}},
            ),
            "start.tracks",
        ),
        (frame(event="connected", sequenceNumber=True), "sequenceNumber"),
    ],
)
def test_malformed_messages_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(TwilioProtocolError, match=field):
        twilio.parse_message(raw)


@given(
    st.one_of(
        st.text(), st.binary(), st.dictionaries(st.text(), st.recursive(st.none() | st.text(), st.lists))
    )
)
def test_any_frame_parses_or_raises_the_typed_error(data: object) -> None:
    raw = json.dumps(data) if isinstance(data, dict) else data
    try:
        twilio.parse_message(raw)  # type: ignore[arg-type]
    except TwilioProtocolError:
        pass


def test_twiml_connects_the_call_to_a_stream() -> None:
    xml = twilio.twiml_connect_stream("wss://example.com/twilio/media", {"agent": 'a"b<c'})
    root = ET.fromstring(xml)
    stream = root.find("Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.get("url") == "wss://example.com/twilio/media"
    param = stream.find("Parameter")
    assert param is not None and (param.get("name"), param.get("value")) == ("agent", 'a"b<c')
    assert (
        ET.fromstring(twilio.twiml_connect_stream("ws://127.0.0.1:8080/m")).find("Connect/Stream") is not None
    )
    with pytest.raises(ValueError, match="wss://"):
        twilio.twiml_connect_stream("https://example.com/media")


def test_request_signature_matches_twilios_documented_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio.signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio.valid_signature("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, params)
    assert not twilio.valid_signature("12345", None, url, params)
    assert not twilio.valid_signature(
        "12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, {**params, "Digits": "1235"}
    )
    assert not twilio.valid_signature("54321", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, params)
