"""Realtime wire fast paths: `append_frame`, `parse_audio_delta`, `AudioDelta`.

References are the stdlib (`json`, `base64`), numpy and the `openai` package's own event models.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import numpy as np
import pydantic
import pytest
from fastvoice.audio import AudioDelta, AudioFormatError, append_frame, parse_audio_delta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

AUDIO_TYPES = ("response.output_audio.delta", "response.audio.delta")
CLIENT_EVENT = pydantic.TypeAdapter(RealtimeClientEvent)
SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)


def reference_frame(pcm: bytes) -> bytes:
    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    return json.dumps(event, separators=(",", ":")).encode()


def reference_pcm16(x: np.ndarray) -> np.ndarray:
    """Scale by 32768, round half away from zero, clip, NaN -> 0 (computed in float64)."""
    y = x.astype(np.float64) * 32768.0
    r = np.sign(y) * np.floor(np.abs(y) + 0.5)
    r = np.where(np.isnan(r), 0.0, np.clip(r, -32768, 32767))
    return r.astype(np.int16)


def delta_event(pcm: bytes, kind: str = AUDIO_TYPES[0], **ids: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "event_id": "event_CvZ3xq8k1",
        "response_id": "resp_CvZ3xqAbc",
        "item_id": "item_CvZ3xqDef",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    event.update(ids)
    return event


# ----------------------------------------------------------------------------- append_frame


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1535, 1536, 1537, 2400, 24000 * 3 + 1])
def test_append_frame_matches_json_dumps_for_pcm16(n: int) -> None:
    rng = np.random.default_rng(n)
    pcm = rng.integers(-32768, 32768, n, dtype=np.int16)
    expected = reference_frame(pcm.tobytes())
    assert append_frame(pcm) == expected
    assert append_frame(pcm.tobytes()) == expected
    assert append_frame(bytearray(pcm.tobytes())) == expected
    assert append_frame(memoryview(pcm.tobytes())) == expected


def test_append_frame_validates_as_openai_client_event() -> None:
    pcm = np.arange(-1200, 1200, dtype=np.int16) * 7
    frame = append_frame(pcm)
    event = CLIENT_EVENT.validate_json(frame)
    assert event.type == "input_audio_buffer.append"
    assert base64.b64decode(event.audio) == pcm.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_append_frame_converts_floats_with_the_pcm_rule(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(2400 * 3 + 5) * 0.6).astype(dtype)  # clips sometimes
    edges = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0, 2.0, -2.0, 0.5, 0.5 / 32768, -0.5 / 32768,
                      1.5 / 32768, 2.5 / 32768, -2.5 / 32768, 32767.5 / 32768], dtype=dtype)  # fmt: skip
    x = np.concatenate([edges, x])
    expected_pcm = reference_pcm16(x)
    assert list(expected_pcm[:14]) == [0, 32767, -32768, 32767, -32768, 32767, -32768, 16384,
                                       1, -1, 2, 3, -3, 32767]  # fmt: skip
    assert append_frame(x) == reference_frame(expected_pcm.tobytes())


def test_append_frame_accepts_strided_arrays() -> None:
    stereo = (np.random.default_rng(2).standard_normal((2400, 2)) * 0.3).astype(np.float32)
    left = stereo[:, 0]
    assert append_frame(left) == reference_frame(reference_pcm16(left).tobytes())


def test_append_frame_empty_input_gives_valid_empty_frame() -> None:
    for empty in (b"", np.zeros(0, np.int16), np.zeros(0, np.float32)):
        frame = append_frame(empty)
        assert frame == b'{"type":"input_audio_buffer.append","audio":""}'
        assert CLIENT_EVENT.validate_json(frame).audio == ""


def test_append_frame_rejects_bad_input() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        append_frame(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        append_frame(bytearray(5))
    with pytest.raises(AudioFormatError):
        append_frame(np.zeros(4, np.int32))
    with pytest.raises(AudioFormatError):
        append_frame(np.zeros(4, ">i2"))
    with pytest.raises(TypeError):
        append_frame("not audio")  # type: ignore[arg-type]
    assert issubclass(AudioFormatError, ValueError)


# ----------------------------------------------------------------------------- parse_audio_delta


@pytest.mark.parametrize("kind", AUDIO_TYPES)
def test_parse_audio_delta_matches_json_and_base64(kind: str) -> None:
    pcm = np.random.default_rng(3).integers(-32768, 32768, 2400, dtype=np.int16).tobytes()
    event = delta_event(pcm, kind, output_index=2, content_index=5)
    text = json.dumps(event)
    for frame in (text, text.encode()):
        d = parse_audio_delta(frame)
        assert isinstance(d, AudioDelta)
        assert d.type == kind
        assert d.pcm == pcm
        assert (d.event_id, d.item_id, d.response_id) == (
            event["event_id"],
            event["item_id"],
            event["response_id"],
        )
        assert (d.output_index, d.content_index) == (2, 5)


@pytest.mark.parametrize("item_id", ["", "x" * 46, "y" * 47, "é" * 23, "é" * 24, "item_" + "z" * 200])
def test_ids_of_every_length_and_encoding(item_id: str) -> None:
    """Short ids are stored inline, long or escaped ones on the heap: both must round-trip."""
    for ensure_ascii in (True, False):
        frame = json.dumps(delta_event(b"\x00\x00", item_id=item_id), ensure_ascii=ensure_ascii)
        d = parse_audio_delta(frame.encode())
        assert d is not None and d.item_id == item_id


def test_large_frames_take_the_gil_released_path() -> None:
    """10 s of audio (frames far above the 32 KiB threshold) in both directions."""
    pcm = np.random.default_rng(7).integers(-32768, 32768, 240_000, dtype=np.int16)
    frame = append_frame(pcm)
    assert frame == reference_frame(pcm.tobytes())
    d = parse_audio_delta(json.dumps(delta_event(pcm.tobytes())))
    assert d is not None and d.pcm == pcm.tobytes() and len(d) == 240_000
    assert d.duration_ms() == pytest.approx(10_000)


def test_parse_audio_delta_agrees_with_openai_server_event_model() -> None:
    pcm = np.arange(480, dtype=np.int16).tobytes()
    frame = json.dumps(delta_event(pcm))
    model = SERVER_EVENT.validate_json(frame)
    d = parse_audio_delta(frame)
    assert d is not None
    assert model.type == d.type
    assert (model.item_id, model.response_id, model.event_id) == (d.item_id, d.response_id, d.event_id)
    assert base64.b64decode(model.delta) == d.pcm


def test_escapes_order_whitespace_and_unknown_members() -> None:
    pcm = bytes(range(256)) * 4  # base64 of this contains many '/'
    event = delta_event(pcm, item_id='it"\\A\u00e9\U0001f600/', response_id="\u0041\n\t")
    del event["event_id"]
    event["extra"] = {"type": "response.done", "deep": [1, 2.5e-3, None, True, {"type": "x"}], "s": '"type"'}
    keys = list(event)
    random.Random(4).shuffle(keys)
    text = json.dumps({k: event[k] for k in keys}, indent=2)
    assert "\\u00e9" in text and "\\ud83d\\ude00" in text
    text = text.replace(event["delta"], event["delta"].replace("/", "\\/"))
    assert "\\/" in text
    d = parse_audio_delta(text)
    assert d is not None
    assert d.pcm == pcm
    assert d.item_id == event["item_id"]
    assert d.response_id == "A\n\t"
    assert d.event_id is None


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"response.done","response":{"id":"resp_1"}}',
        '{"type":"response.output_audio_transcript.delta","delta":"hi there"}',
        '{"note":"\\"type\\":\\"response.audio.delta\\"","delta":"AAAA"}',
        '{"inner":{"type":"response.audio.delta"},"delta":"AAAA"}',
        '{"type":"response.audio.deltas","delta":"AAAA"}',
        "[]",
        "",
        "not json at all",
        b"\xff\xfe\x00",
        '{"type":"response.audio.delta","delta":"AAAA","type":"error"}',  # last duplicate key wins
    ],
)
def test_other_frames_return_none(frame: str | bytes) -> None:
    assert parse_audio_delta(frame) is None


def _malformed(**change: Any) -> str:
    event = delta_event(b"\x01\x00\x02\x00")
    for key, value in change.items():
        if value is KeyError:
            del event[key]
        else:
            event[key] = value
    return json.dumps(event)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_malformed(delta="AQ!CAA=="), "base64"),
        (_malformed(delta="AQACAA"), "base64"),
        (_malformed(delta="AQAC"), "even number"),
        (_malformed(delta="AAB="), "base64"),  # non-zero padding bits: not canonical base64
        (_malformed(delta="AAAA\n"), "base64"),
        (_malformed(delta=KeyError), '"delta"'),
        (_malformed(delta=None), '"delta"'),
        (_malformed(item_id=KeyError), '"item_id"'),
        (_malformed(item_id=17), '"item_id"'),
        (_malformed(response_id=["r"]), '"response_id"'),
        (_malformed(output_index="0"), '"output_index"'),
        (_malformed(content_index=1.5), '"content_index"'),
        (_malformed(content_index=True), '"content_index"'),
        (_malformed(content_index=2**70), '"content_index"'),
        (_malformed(output_index=float("-inf")), '"output_index"'),  # found by the fuzzer
        (_malformed(output_index=float("nan")), '"output_index"'),
        (_malformed(event_id=3), '"event_id"'),
        (_malformed()[:-5], "malformed JSON"),
        (_malformed().replace('"item_id": "', '"item_id": "\\ud800'), '"item_id"'),
    ],
)
def test_malformed_audio_deltas_raise(frame: str, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        parse_audio_delta(frame)


def test_audio_delta_object() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 1234], np.int16)
    d = parse_audio_delta(json.dumps(delta_event(pcm.tobytes())).encode())
    assert d is not None
    assert d.pcm is d.pcm  # one bytes object, not a copy per access
    ints = d.samples()
    assert ints.dtype == np.int16 and np.array_equal(ints, pcm)
    ints[0] = 5  # a fresh, writable array
    assert d.pcm == pcm.tobytes()
    floats = d.samples("float32")
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, pcm.astype(np.float32) / 32768)
    assert len(d) == 6
    assert d.duration_ms() == pytest.approx(6 / 24)
    assert d.duration_ms(16000) == pytest.approx(6 / 16)
    with pytest.raises(AudioFormatError):
        d.samples("int8")  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError):
        d.duration_ms(0)
    with pytest.raises(AttributeError):
        d.item_id = "x"  # type: ignore[misc]
    assert "item_CvZ3xqDef" in repr(d)


# ----------------------------------------------------------------------------- fuzzing

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(
    ["type", "delta", "item_id", "response_id", "event_id", "output_index", "content_index", "x"]
) | st.text(max_size=10)
type_values = st.sampled_from([*AUDIO_TYPES, "response.done", "error"]) | json_values


def expected_outcome(frame: str | bytes) -> Any:
    """What `parse_audio_delta` must do, from `json` + `base64`: a tuple, None or an exception type."""
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return "invalid"  # not JSON: None or AudioFormatError are both acceptable
    if not isinstance(obj, dict) or obj.get("type") not in AUDIO_TYPES:
        return None
    try:
        for name in ("item_id", "response_id"):
            assert isinstance(obj[name], str)
        assert isinstance(obj.get("event_id"), str | None)
        # Documented limit: ids with lone surrogate escapes (json gives a str Rust cannot hold) raise.
        for name in ("item_id", "response_id", "event_id"):
            assert not any(0xD800 <= ord(c) <= 0xDFFF for c in obj.get(name) or "")
        for name in ("output_index", "content_index"):
            value = obj[name]
            assert type(value) is int and -(2**63) <= value < 2**63
        assert isinstance(obj["delta"], str)
        pcm = base64.b64decode(obj["delta"], validate=True)
        # We accept canonical base64 only (zero padding bits, RFC 4648 3.5), as servers send.
        assert base64.b64encode(pcm).decode() == obj["delta"]
        assert len(pcm) % 2 == 0
    except (AssertionError, KeyError, ValueError):
        return AudioFormatError
    return (obj["type"], obj.get("event_id"), obj["item_id"], obj["response_id"],
            obj["output_index"], obj["content_index"], pcm)  # fmt: skip


def check(frame: str | bytes) -> None:
    want = expected_outcome(frame)
    try:
        got = parse_audio_delta(frame)
    except AudioFormatError:
        assert want in ("invalid", AudioFormatError), frame
        return
    if got is None:
        assert want in ("invalid", None), frame
        return
    assert want not in ("invalid", None, AudioFormatError), frame
    assert (got.type, got.event_id, got.item_id, got.response_id, got.output_index, got.content_index,
            got.pcm) == want  # fmt: skip


@st.composite
def delta_frames(draw: st.DrawFn) -> str:
    """Valid-looking audio delta frames with random ids, key order, extras and formatting."""
    pcm = draw(st.binary(max_size=64))
    if len(pcm) % 2 and draw(st.booleans()):
        pcm = pcm[:-1]
    event: dict[str, Any] = {
        "type": draw(st.sampled_from(AUDIO_TYPES)),
        "item_id": draw(st.text(max_size=12)),
        "response_id": draw(st.text(max_size=12)),
        "output_index": draw(st.integers(-(2**63), 2**63 - 1)),
        "content_index": draw(st.integers(0, 10)),
        "delta": base64.b64encode(pcm).decode(),
    }
    if draw(st.booleans()):
        event["event_id"] = draw(st.none() | st.text(max_size=12))
    event.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3)))
    order = draw(st.permutations(list(event)))
    text = json.dumps(
        {k: event[k] for k in order},
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.none() | st.integers(0, 2)),
    )
    if draw(st.booleans()):
        text = text.replace("/", "\\/")  # legal everywhere inside JSON strings
    return text


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(delta_frames(), st.booleans())
def test_fuzz_delta_frames_equal_json_and_base64(frame: str, as_bytes: bool) -> None:
    check(frame.encode() if as_bytes else frame)


@FUZZ
@given(st.dictionaries(keys, json_values, max_size=6), type_values)
def test_fuzz_random_objects(obj: dict[str, Any], type_value: Any) -> None:
    check(json.dumps(obj))
    check(json.dumps({**obj, "type": type_value}))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    check(data)
    check(b'{"type":"response.audio.delta",' + data)


@FUZZ
@given(delta_frames(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
def test_fuzz_mutated_frames(frame: str, edits: list[tuple[int, int]]) -> None:
    """Valid frames with a few bytes overwritten (this found the lone-surrogate case)."""
    data = bytearray(frame.encode())
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    check(bytes(data))


@FUZZ
@given(delta_frames(), st.data())
def test_fuzz_truncated_frames(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, max(len(frame) - 1, 0)))
    check(frame[:cut])
    check(frame.encode()[:cut])
