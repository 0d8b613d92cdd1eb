"""The `fastvoice` command line.

`fastvoice demo` is the package's main job: it runs offline on a WAV that ships inside
the package, so a fresh install can be checked without a key or a network.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fastvoice import __version__, audio

REALTIME_RATE = 24000
PHONE_RATE = 8000
CHUNK_MS = 20


def sample_wav() -> bytes:
    """The bundled sample: eSpeak NG saying "What is the weather like today?" (22.05 kHz)."""
    return resources.files("fastvoice").joinpath("data/sample.wav").read_bytes()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def run_demo(out: Path, source: Path | None = None) -> int:
    """Decode a WAV, stream it through the resampler as a microphone would, take the phone
    (G.711) path, frame it for the Realtime wire, and write the 24 kHz result."""
    data = source.read_bytes() if source else sample_wav()
    t0 = time.perf_counter()
    wav = audio.wav_decode(data)
    t_decode = time.perf_counter() - t0
    pcm = audio.from_pcm16(wav.pcm16)
    if wav.channels > 1:
        pcm = audio.to_mono(pcm, wav.channels)
    print(
        f"input      {source or 'bundled sample'}: {wav.sample_rate} Hz, {wav.channels} ch, "
        f"{wav.duration_s:.2f} s (decoded in {_ms(t_decode)})"
    )

    # Stream in 20 ms chunks through one stateful resampler, as live capture would.
    chunk = max(1, wav.sample_rate * CHUNK_MS // 1000)
    t0 = time.perf_counter()
    stream = audio.Resampler(wav.sample_rate, REALTIME_RATE)
    parts = [stream.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    parts.append(stream.flush())
    streamed: npt.NDArray[np.int16] = np.concatenate(parts)
    t_stream = time.perf_counter() - t0
    n_chunks = len(parts) - 1
    print(
        f"resample   {wav.sample_rate} -> {REALTIME_RATE} Hz in {n_chunks} chunks of {CHUNK_MS} ms: "
        f"{_ms(t_stream)} total, {t_stream / max(n_chunks, 1) * 1e6:.1f} us/chunk, "
        f"delay {stream.delay_ms:.2f} ms"
    )

    # The phone path: 8 kHz G.711 u-law and back.
    t0 = time.perf_counter()
    phone = audio.resample(streamed, REALTIME_RATE, PHONE_RATE)
    ulaw = audio.ulaw_encode(phone)
    back = audio.from_pcm16(audio.ulaw_decode(ulaw))
    t_phone = time.perf_counter() - t0
    err = np.abs(back.astype(np.int32) - phone.astype(np.int32)).max() if len(phone) else 0
    print(
        f"g711       {len(phone)} samples at {PHONE_RATE} Hz -> {len(ulaw)} u-law bytes and back "
        f"in {_ms(t_phone)} (max error {err})"
    )

    # The Realtime wire: one input_audio_buffer.append frame per 20 ms chunk.
    frame_chunk = REALTIME_RATE * CHUNK_MS // 1000
    t0 = time.perf_counter()
    frames = [audio.append_frame(streamed[i : i + frame_chunk]) for i in range(0, len(streamed), frame_chunk)]
    t_frames = time.perf_counter() - t0
    print(
        f"wire       {len(frames)} append frames, {sum(map(len, frames))} bytes in {_ms(t_frames)} "
        f"({t_frames / max(len(frames), 1) * 1e6:.2f} us/frame)"
    )

    out.write_bytes(audio.wav_encode(streamed, sample_rate=REALTIME_RATE))
    print(f"output     {out}: {REALTIME_RATE} Hz mono PCM16, {len(streamed) / REALTIME_RATE:.2f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastvoice", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fastvoice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the offline audio demo on the bundled sample")
    demo.add_argument("input", nargs="?", type=Path, help="a WAV file instead of the bundled sample")
    demo.add_argument("-o", "--output", type=Path, default=Path("out.wav"), help="where to write the result")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args.output, args.input)
    except (OSError, ValueError) as exc:
        print(f"fastvoice: error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
