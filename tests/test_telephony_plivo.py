"""The Plivo Audio Streaming protocol layer: every frame Plivo documents parsed (camelCase, a string
timestamp, the payload as exact bytes), malformed frames as a typed error naming the field, the
outbound frames and the dialect's framing byte for byte (playAudio naming the stream's own format,
checkpoints acknowledged by playedStream), the XML answer, and X-Plivo-Signature-V3."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from fastvoice import audio
from fastvoice.telephony import plivo
from fastvoice.telephony._dialect import CallDtmf, CallStart, CallStop
from fastvoice.telephony.plivo import PlivoDialect, PlivoProtocolError
from hypothesis import given
from hypothesis import strategies as st

# The identifiers of Plivo's own examples.
CALL = "12345678-1234-1234-1234-123456789abc"
SID = "87654321-4321-4321-4321-cba987654321"


def frame(**data: object) -> str:
    return json.dumps(data)


def start_frame(encoding: str = "audio/x-mulaw", rate: int = 8000) -> str:
    """The start frame of Plivo's protocol reference."""
    return frame(
        event="start",
        sequenceNumber=1,
        start={
            "callId": CALL,
            "streamId": SID,
            "accountId": "MAXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": encoding, "sampleRate": rate},
        },
        extra_headers="userId=12345;sessionId=abc-xyz",
    )


def test_the_frames_plivo_sends() -> None:
    assert plivo.parse_message(start_frame()) == plivo.Start(
        SID,
        CALL,
        "MAXXXXXXXXXXXXXXXXXX",
        ("inbound",),
        "audio/x-mulaw",
        8000,
        "userId=12345;sessionId=abc-xyz",
        {"userId": "12345", "sessionId": "abc-xyz"},
        1,
    )
    ulaw = audio.ulaw_encode(audio.to_pcm16(audio.from_pcm16(bytes(320), "float32")))
    media = plivo.parse_message(
        frame(
            event="media",
            sequenceNumber=42,
            streamId=SID,
            media={
                "track": "inbound",
                "timestamp": "1705312200000",
                "chunk": 41,
                "payload": base64.b64encode(ulaw).decode(),
            },
            extra_headers="userId=12345;sessionId=abc-xyz",
        )
    )
    assert media == plivo.Media(SID, bytes(ulaw), "inbound", 41, 1705312200000, 42)
    assert plivo.parse_message(
        frame(
            event="playedStream",
            streamId="20170ada-f610-433b-8758-c02a2aab3662",
            name="customer greeting audio",
        )
    ) == plivo.PlayedStream("20170ada-f610-433b-8758-c02a2aab3662", "customer greeting audio")
    # Plivo's support pages call the same acknowledgement "played".
    assert plivo.parse_message(frame(event="played", streamId=SID, name="c1")) == plivo.PlayedStream(
        SID, "c1"
    )
    assert plivo.parse_message(
        frame(sequenceNumber=0, event="clearedAudio", streamId="20170ada-f610-433b-8758-c02a2aab3662")
    ) == plivo.ClearedAudio("20170ada-f610-433b-8758-c02a2aab3662", 0)
    assert plivo.parse_message(
        frame(event="dtmf", sequenceNumber=7, streamId=SID, dtmf={"track": "inbound", "digit": "5"})
    ) == plivo.Dtmf(SID, "5", "inbound", 7)
    assert plivo.parse_message(frame(event="stop", streamId=SID, stop={"callId": CALL})) == plivo.Stop(
        SID, CALL
    )
    assert plivo.parse_message(frame(event="sendDTMF", streamId=SID)) is None


def test_extra_headers_in_either_separator() -> None:
    start = json.loads(start_frame())
    start["extra_headers"] = "test1=12,test2=123"
    parsed = plivo.parse_message(json.dumps(start))
    assert isinstance(parsed, plivo.Start) and parsed.parameters == {"test1": "12", "test2": "123"}
    del start["extra_headers"]
    parsed = plivo.parse_message(json.dumps(start))
    assert isinstance(parsed, plivo.Start) and (parsed.extra_headers, parsed.parameters) == ("", {})


def test_outbound_frames_match_the_documented_shapes() -> None:
    pcm = bytes(range(256)) * 2
    assert json.loads(plivo.play_audio_message(pcm, "audio/x-l16", 16000)) == {
        "event": "playAudio",
        "media": {
            "contentType": "audio/x-l16",
            "sampleRate": 16000,
            "payload": base64.b64encode(pcm).decode(),
        },
    }
    assert json.loads(
        plivo.checkpoint_message("20170ada-f610-433b-8758-c02a2aab3662", "customer greeting audio")
    ) == {
        "event": "checkpoint",
        "streamId": "20170ada-f610-433b-8758-c02a2aab3662",
        "name": "customer greeting audio",
    }
    assert json.loads(plivo.clear_audio_message("b77e037d-4119-44b5-902d-25826b654539")) == {
        "event": "clearAudio",
        "streamId": "b77e037d-4119-44b5-902d-25826b654539",
    }
    with pytest.raises(ValueError, match="8000"):
        plivo.play_audio_message(pcm, "audio/x-mulaw", 16000)
    with pytest.raises(ValueError, match="content type"):
        plivo.play_audio_message(pcm, "audio/x-alaw", 8000)


@pytest.mark.parametrize(
    ("encoding", "rate", "realtime", "content_type"),
    [
        ("audio/x-mulaw", 8000, "audio/pcmu", "audio/x-mulaw"),
        ("audio/x-l16", 16000, "audio/pcm", "audio/x-l16"),
        ("audio/x-l16", 8000, "audio/pcm", "audio/x-l16"),
    ],
)
def test_the_dialect_frames_the_streams_own_format(
    encoding: str, rate: int, realtime: str, content_type: str
) -> None:
    dialect = PlivoDialect()
    assert dialect.name == "plivo"
    start = dialect.parse(start_frame(encoding, rate))
    assert start == CallStart("plivo", SID, CALL, realtime, rate, {"userId": "12345", "sessionId": "abc-xyz"})
    framing = dialect.framing(start)
    assert (framing.media_event, framing.ack_event) == ("media", "playedStream")
    filled = json.loads(framing.media_prefix + "QUJD" + framing.media_suffix)
    documented = {
        "event": "playAudio",
        "media": {"contentType": content_type, "sampleRate": rate, "payload": "QUJD"},
    }
    assert filled == documented == json.loads(plivo.play_audio_message(b"ABC", content_type, rate))
    assert json.loads(framing.mark_prefix + "QUJD" + framing.mark_suffix) == json.loads(
        plivo.checkpoint_message(SID, "QUJD")
    )
    assert json.loads(framing.clear) == {"event": "clearAudio", "streamId": SID}


def test_the_dialect_passes_media_and_acks_and_reports_the_call() -> None:
    dialect = PlivoDialect()
    assert dialect.parse(frame(event="media", streamId=SID, media={"payload": "//8="})) is None
    assert dialect.parse(frame(event="playedStream", streamId=SID, name="m1")) is None
    assert dialect.parse(frame(event="clearedAudio", streamId=SID)) is None
    assert dialect.parse(frame(event="dtmf", streamId=SID, dtmf={"digit": "*"})) == CallDtmf("*")
    assert dialect.parse(frame(event="stop", streamId=SID)) == CallStop("stop")
    for bad, field in [
        (start_frame("audio/x-alaw"), "encoding"),
        (start_frame("audio/x-mulaw", 16000), "sampleRate"),
    ]:
        with pytest.raises(PlivoProtocolError, match=field):
            dialect.parse(bad)
    with pytest.raises(ValueError, match="audio/pcma"):
        dialect.framing(CallStart("plivo", SID, CALL, "audio/pcma"))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (frame(streamId=SID), "'event'"),
        (frame(event="media", streamId=SID), "'media'"),
        (frame(event="media", streamId=SID, media={"payload": "!!!"}), "media.payload"),
        (frame(event="media", streamId=1, media={"payload": "AAAA"}), "'streamId'"),
        (
            frame(event="media", streamId=SID, media={"payload": "AAAA", "timestamp": "noon"}),
            "media.timestamp",
        ),
        (frame(event="media", streamId=SID, media={"payload": "AAAA", "chunk": [1]}), "media.chunk"),
        (frame(event="playedStream", streamId=SID), "'name'"),
        (frame(event="dtmf", streamId=SID, dtmf={"digit": 5}), "dtmf.digit"),
        (frame(event="dtmf", streamId=SID), "'dtmf'"),
        (frame(event="start", start={"streamId": SID, "callId": CALL}), "start.mediaFormat"),
        (
            frame(event="start", start={"callId": CALL, "mediaFormat": {"encoding": "audio/x-mulaw"}}),
            "start.streamId",
        ),
        (
            frame(event="start", start={"streamId": SID, "mediaFormat": {"encoding": "audio/x-mulaw"}}),
            "start.callId",
        ),
        (
            frame(
                event="start", start={"streamId": SID, "callId": CALL, "tracks": "inbound", "mediaFormat": {}}
            ),
            "start.tracks",
        ),
        (
            frame(
                event="start",
                start={
                    "streamId": SID,
                    "callId": CALL,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": "fast"},
                },
            ),
            "sampleRate",
        ),
        (
            frame(
                event="start",
                start={"streamId": SID, "callId": CALL, "mediaFormat": {"encoding": "audio/x-mulaw"}},
                extra_headers={},
            ),
            "extra_headers",
        ),
        (frame(event="stop", stop="now"), "'stop'"),
        (frame(event="clearedAudio", sequenceNumber=False), "sequenceNumber"),
    ],
)
def test_malformed_frames_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(PlivoProtocolError, match=field):
        plivo.parse_message(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_events = st.sampled_from(
    ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop", "other"]
)


@given(st.one_of(st.text(), st.binary(), st.dictionaries(st.text(), _json)))
def test_any_frame_parses_or_raises_the_typed_error(data: object) -> None:
    raw = json.dumps(data) if isinstance(data, dict) else data
    for parse in (plivo.parse_message, PlivoDialect().parse):
        try:
            parse(raw)  # type: ignore[arg-type]
        except PlivoProtocolError:
            pass


@given(
    _events,
    st.dictionaries(
        st.sampled_from(
            ["streamId", "sequenceNumber", "start", "media", "dtmf", "name", "stop", "extra_headers"]
        ),
        _json,
    ),
)
def test_frames_of_known_events_parse_or_raise_the_typed_error(event: str, body: dict[str, object]) -> None:
    try:
        PlivoDialect().parse(json.dumps({**body, "event": event}))
    except PlivoProtocolError:
        pass


def test_the_xml_answer_opens_a_bidirectional_stream() -> None:
    xml = plivo.xml_stream(
        "wss://example.com/plivo?a=1&b=2", extra_headers={"agent": "billing7"}, stream_timeout=600
    )
    root = ET.fromstring(xml)
    stream = root.find("Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.text == "wss://example.com/plivo?a=1&b=2"
    assert stream.attrib == {
        "bidirectional": "true",
        "audioTrack": "inbound",
        "keepCallAlive": "true",
        "contentType": "audio/x-mulaw;rate=8000",
        "extraHeaders": "agent=billing7",
        "streamTimeout": "600",
    }
    l16 = ET.fromstring(
        plivo.xml_stream(
            "ws://127.0.0.1:9/m", content_type="audio/x-l16", sample_rate=16000, keep_call_alive=False
        )
    ).find("Stream")
    assert l16 is not None and (l16.get("contentType"), l16.get("keepCallAlive")) == (
        "audio/x-l16;rate=16000",
        "false",
    )
    for kwargs, match in [
        ({"content_type": "audio/x-mulaw", "sample_rate": 16000}, "8000"),
        ({"extra_headers": {"a b": "1"}}, "A-Za-z0-9"),
        ({"extra_headers": {"a": "x" * 600}}, "512"),
        ({"stream_timeout": 0}, "positive"),
    ]:
        with pytest.raises(ValueError, match=match):
            plivo.xml_stream("wss://example.com/m", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wss://"):
        plivo.xml_stream("https://example.com/m")


PARAMS = {"From": "+14156667777", "To": "+14158889999", "CallUUID": "abcd-1234"}


def test_signature_v3_matches_plivos_algorithm() -> None:
    """Vectors published with openHAB's Plivo binding, made with the algorithm of Plivo's SDKs: the
    signed strings are `https://example.com/answer?CallUUIDabcd-1234From+14156667777To+14158889999.12345`
    and the same with `token=xyz.` after the `?`."""
    assert plivo.signature_v3("my_auth_token", "https://example.com/answer", "12345", PARAMS) == (
        "QUFNUHBhaE5m20p3UFtVHCb66PSliiukfx8M6MyiJwk="
    )
    assert plivo.signature_v3("my_auth_token", "https://example.com/answer?token=xyz", "12345", PARAMS) == (
        "IryQ8ucGk4J35wJRxh5K0iVvDCSZpHflFICcZxwx7Cc="
    )


def test_signature_v3_validation() -> None:
    url = "https://example.com/answer"
    good = "QUFNUHBhaE5m20p3UFtVHCb66PSliiukfx8M6MyiJwk="
    assert plivo.valid_signature_v3("my_auth_token", good, "12345", url, PARAMS)
    # One signature per active auth token, comma-separated: any may match.
    assert plivo.valid_signature_v3("my_auth_token", f"bm90IGl0, {good}", "12345", url, PARAMS)
    assert not plivo.valid_signature_v3("my_auth_token", good, "12346", url, PARAMS)
    assert not plivo.valid_signature_v3("wrong_token", good, "12345", url, PARAMS)
    assert not plivo.valid_signature_v3("my_auth_token", good, "12345", url, {**PARAMS, "To": "+1"})
    assert not plivo.valid_signature_v3("my_auth_token", None, "12345", url, PARAMS)
    assert not plivo.valid_signature_v3("my_auth_token", good, None, url, PARAMS)
    # A GET signs its parameters as a sorted query, so their order in the URL does not matter.
    get = plivo.signature_v3("t", "https://example.com/a?b=2&a=1", "n", {"CallUUID": "c"}, "GET")
    assert get == plivo.signature_v3("t", "https://example.com/a?CallUUID=c&a=1&b=2", "n", method="GET")
    assert plivo.valid_signature_v3("t", get, "n", "https://example.com/a?a=1&b=2", {"CallUUID": "c"}, "GET")
    assert get != plivo.signature_v3("t", "https://example.com/a?b=2&a=1", "n", {"CallUUID": "c"}, "POST")


def test_the_guides_telephony_section_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    start = text.index("\n## Telephony\n")
    blocks = re.findall(r"```python\n(.*?)```", text[start : text.index("\n## ", start + 1)], re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "guide Telephony", "exec"), {"__name__": "guide"})
        out = capsys.readouterr().out
        for line in re.findall(r"^# (.+)$", block, re.M):
            assert line in out, (line, out)


_form = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6), st.text(max_size=6), max_size=4
)


@given(_form, st.text(min_size=1, max_size=8), st.sampled_from(["GET", "POST"]))
def test_signature_v3_round_trips_and_binds_every_parameter(
    form: dict[str, str], nonce: str, method: str
) -> None:
    url = "https://example.com/answer?x=1"
    sig = plivo.signature_v3("token", url, nonce, form, method)
    assert plivo.valid_signature_v3("token", sig, nonce, url, dict(reversed(list(form.items()))), method)
    for key in form:
        assert not plivo.valid_signature_v3("token", sig, nonce, url, {**form, key: form[key] + "!"}, method)
    assert not plivo.valid_signature_v3("token", sig, nonce + "0", url, form, method)
