"""`RingBuffer`: FIFO semantics, overflow policies, accounting and real producer/consumer threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastvoice.audio import AudioFormatError, RingBuffer


def seq(start: int, stop: int) -> np.ndarray:
    """int16 sequence numbers start..stop-1, wrapping modulo 2**16."""
    return (np.arange(start, stop) & 0xFFFF).astype(np.uint16).view(np.int16)


def test_fifo_order_wraparound_and_properties() -> None:
    ring = RingBuffer(8)
    assert (ring.capacity, ring.dtype, ring.overflow) == (8, "int16", "drop_oldest")
    assert (ring.available, ring.free, len(ring)) == (0, 8, 0)
    assert ring.write(np.array([1, 2, 3, 4, 5], np.int16)) == 5
    np.testing.assert_array_equal(ring.read(3), [1, 2, 3])
    assert ring.write(np.array([6, 7, 8, 9, 10], np.int16).tobytes()) == 5  # wraps the end
    assert (ring.available, ring.free) == (7, 1)
    out = ring.read()
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [4, 5, 6, 7, 8, 9, 10])
    assert ring.read(5).size == 0
    assert (ring.written, ring.consumed, ring.overflows) == (10, 10, 0)


def test_read_limits() -> None:
    ring = RingBuffer(10, dtype="float32")
    ring.write(np.arange(4, dtype=np.float32))
    assert ring.read(0).size == 0
    np.testing.assert_array_equal(ring.read(100), [0, 1, 2, 3])
    with pytest.raises(AudioFormatError, match="negative"):
        ring.read(-1)


def test_dtype_conversion_uses_the_pcm_rule() -> None:
    ring = RingBuffer(16, dtype="int16")
    ring.write(np.array([0.5, -1.0, 2.0, np.nan, 2.5 / 32768], np.float32))
    ring.write(np.array([0.25], np.float64))
    np.testing.assert_array_equal(ring.read(), [16384, -32768, 32767, 0, 3, 8192])

    fring = RingBuffer(16, dtype="float32")
    fring.write(np.array([16384, -32768], np.int16))
    fring.write(np.array([-4096], np.int16).tobytes())
    fring.write(np.array([0.1], np.float64))
    out = fring.read()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.5, -1.0, -0.125, 0.1], np.float32))


def test_drop_oldest_keeps_the_newest_samples() -> None:
    ring = RingBuffer(4, overflow="drop_oldest")
    assert ring.write(np.array([1, 2, 3], np.int16)) == 3
    assert ring.write(np.array([4, 5], np.int16)) == 2  # evicts 1
    np.testing.assert_array_equal(ring.read(1), [2])
    assert ring.write(np.arange(10, 20, dtype=np.int16)) == 4  # keeps 16..19
    np.testing.assert_array_equal(ring.read(), [16, 17, 18, 19])
    # 1 evicted; then 3 evicted (3, 4, 5) and 6 never stored (10..15).
    assert ring.overflows == 10
    assert (ring.written, ring.consumed) == (9, 5)


def test_drop_newest_stores_what_fits() -> None:
    ring = RingBuffer(4, overflow="drop_newest")
    assert ring.write(np.array([1, 2, 3], np.int16)) == 3
    assert ring.write(np.array([4, 5, 6], np.int16)) == 1
    np.testing.assert_array_equal(ring.read(), [1, 2, 3, 4])
    assert ring.overflows == 2


def test_error_policy_stores_nothing() -> None:
    ring = RingBuffer(4, overflow="error")
    ring.write(np.array([1, 2, 3], np.int16))
    with pytest.raises(OverflowError, match="2 samples do not fit in 1 free"):
        ring.write(np.array([4, 5], np.int16))
    np.testing.assert_array_equal(ring.read(), [1, 2, 3])
    assert ring.overflows == 0


def test_read_into_int16_float32_2d_and_pad() -> None:
    ring = RingBuffer(32)
    ring.write(np.array([100, -200, 300], np.int16))
    out = np.full(5, 7, np.int16)
    assert ring.read_into(out) == 3
    np.testing.assert_array_equal(out, [100, -200, 300, 7, 7])  # rest untouched

    ring.write(np.array([16384, -32768, 1], np.int16))
    outdata = np.full((4, 1), 9.0, np.float32)  # sounddevice-style (frames, channels)
    assert ring.read_into(outdata, pad=True) == 3
    np.testing.assert_array_equal(outdata[:, 0], [0.5, -1.0, 1 / 32768, 0.0])
    assert ring.consumed == 6

    fring = RingBuffer(8, dtype="float32")
    fring.write(np.array([0.5, 1.5], np.float32))
    out16 = np.zeros(2, np.int16)
    assert fring.read_into(out16) == 2
    np.testing.assert_array_equal(out16, [16384, 32767])


def test_read_into_rejects_bad_destinations() -> None:
    ring = RingBuffer(8)
    ring.write(np.arange(4, dtype=np.int16))
    readonly = np.zeros(4, np.int16)
    readonly.flags.writeable = False
    with pytest.raises(AudioFormatError, match="writable"):
        ring.read_into(readonly)
    with pytest.raises(AudioFormatError, match="writable"):
        ring.read_into(b"\x00" * 8)
    with pytest.raises(AudioFormatError, match="contiguous"):
        ring.read_into(np.zeros(8, np.int16)[::2])
    with pytest.raises(AudioFormatError, match="int16 or float32"):
        ring.read_into(np.zeros(4, np.int32))
    with pytest.raises(TypeError):
        ring.read_into([0, 0])  # type: ignore[arg-type]
    assert ring.available == 4  # nothing was taken by the failed calls


def test_clear_and_reset() -> None:
    ring = RingBuffer(8)
    ring.write(np.arange(6, dtype=np.int16))
    ring.read(2)
    assert ring.clear() == 4
    assert (ring.available, ring.written, ring.consumed) == (0, 6, 2)
    ring.write(np.arange(20, dtype=np.int16))
    ring.reset()
    assert (ring.available, ring.written, ring.consumed, ring.overflows) == (0, 0, 0, 0)


def test_bad_construction_and_input() -> None:
    for bad in (0, -1, 2**40):
        with pytest.raises(AudioFormatError, match="capacity"):
            RingBuffer(bad)
    with pytest.raises(AudioFormatError, match="dtype"):
        RingBuffer(8, dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="overflow"):
        RingBuffer(8, overflow="block")  # type: ignore[arg-type]
    ring = RingBuffer(8)
    with pytest.raises(AudioFormatError, match="even number"):
        ring.write(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError):
        ring.write(np.zeros(2, np.int32))
    assert ring.available == 0


TOTAL = 1_200_000


def _run_pair(producer: threading.Thread, consumer: threading.Thread, errors: list[BaseException]) -> None:
    producer.start()
    consumer.start()
    producer.join(timeout=60)
    consumer.join(timeout=60)
    assert not producer.is_alive() and not consumer.is_alive(), "threads hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("use_read_into", [False, True])
def test_threads_move_every_sample_in_order(use_read_into: bool) -> None:
    """Producer and consumer threads, chunks from 1 to 40k samples (big ones release the GIL)."""
    ring = RingBuffer(50_000, overflow="drop_newest")
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 40_000, 200)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            sent, i = 0, 0
            while sent < TOTAL:
                n = min(int(sizes[i % len(sizes)]), TOTAL - sent)
                i += 1
                chunk = seq(sent, sent + n)
                while chunk.size:
                    stored = ring.write(chunk)
                    chunk = chunk[stored:]  # back-pressure: resend the refused tail
                    sent += stored
        except BaseException as e:
            errors.append(e)

    def consume() -> None:
        try:
            got = 0
            out = np.empty(30_000, np.int16)
            while got < TOTAL:
                if use_read_into:
                    n = ring.read_into(out)
                    block = out[:n]
                else:
                    block = ring.read(30_000)
                if block.size:
                    assert np.array_equal(block, seq(got, got + block.size)), f"mismatch at {got}"
                    got += block.size
        except BaseException as e:
            errors.append(e)

    _run_pair(threading.Thread(target=produce), threading.Thread(target=consume), errors)
    assert ring.consumed == TOTAL and ring.written == TOTAL and ring.available == 0


def test_threads_drop_oldest_never_reorders() -> None:
    """Without back-pressure samples get evicted, but the reader sees them in order, once."""
    ring = RingBuffer(4_000, dtype="float32")
    total = 600_000
    errors: list[BaseException] = []
    done = threading.Event()

    def produce() -> None:
        try:
            for start in range(0, total, 3_000):
                ring.write(np.arange(start, min(start + 3_000, total), dtype=np.float32))
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    seen: list[np.ndarray] = []

    def consume() -> None:
        try:
            while True:
                finished = done.is_set()
                block = ring.read(1_000)
                seen.append(block)
                if finished and block.size == 0:
                    return
        except BaseException as e:
            errors.append(e)

    _run_pair(threading.Thread(target=produce), threading.Thread(target=consume), errors)
    values = np.concatenate(seen)
    assert np.all(np.diff(values) > 0)
    assert values[-1] == total - 1
    assert ring.consumed == values.size
    assert ring.consumed + ring.overflows == total


def test_skipped_counts_what_left_unread_so_items_start_where_they_will_be_played() -> None:
    ring = RingBuffer(10, overflow="drop_oldest")
    ring.write(np.arange(6, dtype=np.int16))
    assert ring.read(2).tolist() == [0, 1]
    assert ring.clear() == 4  # an interruption drops what was not played
    assert (ring.written, ring.consumed, ring.skipped) == (6, 2, 4)
    start = ring.written - ring.skipped  # the next item begins at this consumed count
    ring.write(np.arange(100, 108, dtype=np.int16))
    ring.read(3)
    assert ring.consumed - start == 3  # exactly what was played of the new item
    ring.write(np.arange(200, 206, dtype=np.int16))  # 11 > 10: the oldest unread sample is evicted
    assert ring.skipped == 5 and ring.overflows == 1
    ring.reset()
    assert (ring.written, ring.consumed, ring.skipped) == (0, 0, 0)
