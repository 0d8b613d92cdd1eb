"""Realtime wire fast paths and the ring buffer against the pure-Python stacks users would write.

Groups (competitors side by side in one run):
- wire-send-f32: float32 100 ms @ 24 kHz -> `input_audio_buffer.append` frame bytes
- wire-send-pcm16: PCM16 bytes 100 ms -> frame bytes
- wire-recv: bytes of a 100 ms `response.output_audio.delta` frame -> int16 numpy array (or PCM bytes)
- ring: one 20 ms chunk through a ring (write + read into a preallocated playback buffer)
Every benchmark asserts its result so it cannot silently rot.
"""

from __future__ import annotations

import base64
import json
import queue
from typing import Any

import numpy as np
import orjson
import pybase64
import pytest
from fastvoice.audio import RingBuffer, append_frame, parse_audio_delta

RATE = 24_000
CHUNK = RATE // 10  # 100 ms
PREFIX = b'{"type":"input_audio_buffer.append","audio":"'
SUFFIX = b'"}'

_rng = np.random.default_rng(0)
# Float samples that sit well away from rounding ties, so numpy's round-half-even and the crate's
# round-half-away-from-zero agree and every stack must produce the same bytes.
_ints = _rng.integers(-30000, 30000, CHUNK)
X = ((_ints + _rng.uniform(-0.4, 0.4, CHUNK)) / 32768).astype(np.float32)
PCM = _ints.astype(np.int16).tobytes()
EXPECTED_FRAME = json.dumps(
    {"type": "input_audio_buffer.append", "audio": base64.b64encode(PCM).decode()}, separators=(",", ":")
).encode()

DELTA_FRAME = json.dumps(
    {
        "type": "response.output_audio.delta",
        "event_id": "event_CdRkh0xZ4bDq3mIk1Oxz3",
        "response_id": "resp_CdRkgzMF0Pn8s1vJ8pTqQ",
        "item_id": "item_CdRkgzVb8cXWkyL1pv2Zs",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(PCM).decode(),
    },
    separators=(",", ":"),
).encode()
EXPECTED_SAMPLES = np.frombuffer(PCM, np.int16)


def _info(benchmark: Any, group: str, impl: str) -> None:
    benchmark.group = group
    benchmark.extra_info["impl"] = impl


# ----------------------------------------------------------------------------- send path


def send_numpy_pybase64_orjson(x: np.ndarray) -> bytes:
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16).tobytes()
    return orjson.dumps({"type": "input_audio_buffer.append", "audio": pybase64.b64encode(pcm).decode()})


def send_numpy_pybase64_concat(x: np.ndarray) -> bytes:
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16).tobytes()
    return PREFIX + pybase64.b64encode(pcm) + SUFFIX


def send_stdlib(x: np.ndarray) -> bytes:
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16).tobytes()
    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    return json.dumps(event, separators=(",", ":")).encode()


SEND_F32 = {
    "fastvoice.append_frame": append_frame,
    "numpy+pybase64+orjson": send_numpy_pybase64_orjson,
    "numpy+pybase64+concat": send_numpy_pybase64_concat,
    "numpy+base64+json (stdlib)": send_stdlib,
}


@pytest.mark.parametrize("impl", SEND_F32)
def test_send_f32(benchmark: Any, impl: str) -> None:
    _info(benchmark, "wire-send-f32 (100 ms float32 -> frame)", impl)
    assert benchmark(SEND_F32[impl], X) == EXPECTED_FRAME


SEND_PCM16 = {
    "fastvoice.append_frame": append_frame,
    "pybase64+orjson": lambda pcm: orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": pybase64.b64encode(pcm).decode()}
    ),
    "pybase64+concat": lambda pcm: PREFIX + pybase64.b64encode(pcm) + SUFFIX,
    "base64+json (stdlib)": lambda pcm: json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}, separators=(",", ":")
    ).encode(),
}


@pytest.mark.parametrize("impl", SEND_PCM16)
def test_send_pcm16(benchmark: Any, impl: str) -> None:
    _info(benchmark, "wire-send-pcm16 (100 ms bytes -> frame)", impl)
    assert benchmark(SEND_PCM16[impl], PCM) == EXPECTED_FRAME


# ----------------------------------------------------------------------------- receive path


def recv_fastvoice_frombuffer(frame: bytes) -> np.ndarray:
    d = parse_audio_delta(frame)
    assert d is not None
    return np.frombuffer(d.pcm, np.int16)


def recv_fastvoice_samples(frame: bytes) -> np.ndarray:
    d = parse_audio_delta(frame)
    assert d is not None
    return d.samples()


def recv_orjson_pybase64(frame: bytes) -> np.ndarray:
    event = orjson.loads(frame)
    assert event["type"] == "response.output_audio.delta"
    return np.frombuffer(pybase64.b64decode(event["delta"]), np.int16)


def recv_stdlib(frame: bytes) -> np.ndarray:
    event = json.loads(frame)
    assert event["type"] == "response.output_audio.delta"
    return np.frombuffer(base64.b64decode(event["delta"]), np.int16)


RECV = {
    "fastvoice parse + np.frombuffer(d.pcm)": recv_fastvoice_frombuffer,
    "fastvoice parse + d.samples()": recv_fastvoice_samples,
    "orjson+pybase64+np.frombuffer": recv_orjson_pybase64,
    "json+base64+np.frombuffer (stdlib)": recv_stdlib,
}


@pytest.mark.parametrize("impl", RECV)
def test_recv(benchmark: Any, impl: str) -> None:
    _info(benchmark, "wire-recv (100 ms delta frame -> int16 array)", impl)
    assert np.array_equal(benchmark(RECV[impl], DELTA_FRAME), EXPECTED_SAMPLES)


def recv_pcm_fastvoice(frame: bytes | str) -> bytes:
    d = parse_audio_delta(frame)
    assert d is not None
    return d.pcm


def recv_pcm_orjson(frame: bytes | str) -> bytes:
    event = orjson.loads(frame)
    assert event["type"] == "response.output_audio.delta"
    return pybase64.b64decode(event["delta"])


RECV_PCM = {"fastvoice parse_audio_delta(f).pcm": recv_pcm_fastvoice, "orjson+pybase64": recv_pcm_orjson}


@pytest.mark.parametrize("impl", RECV_PCM)
@pytest.mark.parametrize("kind", ["bytes", "str"])
def test_recv_pcm(benchmark: Any, impl: str, kind: str) -> None:
    """Frames as bytes (native transport) or str (what `websockets` hands out for text frames)."""
    _info(benchmark, f"wire-recv-pcm-{kind} (100 ms delta frame as {kind} -> PCM bytes)", impl)
    frame = DELTA_FRAME if kind == "bytes" else DELTA_FRAME.decode()
    assert benchmark(RECV_PCM[impl], frame) == PCM


def test_recv_other_frame(benchmark: Any) -> None:
    """Cost of rejecting a non-audio frame (every transcript delta goes through this)."""
    _info(benchmark, "wire-recv-other (transcript delta -> None)", "fastvoice.parse_audio_delta")
    frame = b'{"type":"response.output_audio_transcript.delta","event_id":"event_1","response_id":"r",'
    frame += b'"item_id":"i","output_index":0,"content_index":0,"delta":"Hello there, how can I help?"}'
    assert benchmark(parse_audio_delta, frame) is None


# ----------------------------------------------------------------------------- ring buffer

RING_CHUNK = RATE // 50  # 20 ms
RING_IN = np.arange(RING_CHUNK, dtype=np.int16)


def test_ring_fastvoice(benchmark: Any) -> None:
    _info(benchmark, "ring (20 ms int16 chunk: write + read_into)", "fastvoice.RingBuffer")
    ring = RingBuffer(RATE)
    out = np.empty(RING_CHUNK, np.int16)

    def step() -> int:
        ring.write(RING_IN)
        return ring.read_into(out)

    assert benchmark(step) == RING_CHUNK
    assert np.array_equal(out, RING_IN)


def test_ring_queue(benchmark: Any) -> None:
    """Reference point: a thread-safe queue of chunks plus a copy into the playback buffer."""
    _info(benchmark, "ring (20 ms int16 chunk: write + read_into)", "queue.SimpleQueue + np.copyto")
    q: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    out = np.empty(RING_CHUNK, np.int16)

    def step() -> int:
        q.put(RING_IN.copy())
        np.copyto(out, q.get())
        return out.size

    assert benchmark(step) == RING_CHUNK
    assert np.array_equal(out, RING_IN)
