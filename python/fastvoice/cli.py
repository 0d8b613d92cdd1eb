"""The `fastvoice` command line.

`fastvoice demo` is the package's main job: it runs the whole voice pipeline offline on a
WAV that ships inside the package, so a fresh install can be checked without a key or a
network. `pipeline`, `transcribe` and `speak` run it on your own files; `audio-demo` shows
the audio core alone; `serve` hands over to `fastvoice.serve`, `phone` to
`fastvoice.telephony.cli` and `web` to `fastvoice.web.cli`.

Errors are reported as one line, `fastvoice: error: ...`, with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fastvoice import __version__, audio
from fastvoice.voice.events import VoiceError

REALTIME_RATE = 24000
PHONE_RATE = 8000
CHUNK_MS = 20


def sample_wav() -> bytes:
    """The bundled sample: eSpeak NG saying "What is the weather like today?" (22.05 kHz)."""
    return resources.files("fastvoice").joinpath("data/sample.wav").read_bytes()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def run_audio_demo(out: Path, source: Path | None = None) -> int:
    """Decode a WAV, stream it through the resampler as a microphone would, take the phone
    (G.711) path, frame it for the Realtime wire, and write the 24 kHz result."""
    data = _read_file(source) if source else sample_wav()
    t0 = time.perf_counter()
    try:
        wav = audio.wav_decode(data)
    except ValueError as exc:
        raise CliError(f"{source or 'the bundled sample'} is not a readable WAV file: {exc}") from None
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


# -- the voice commands ----------------------------------------------------------------------

TTS_RATE = 24000
#: Inputs at least this long get a progress display on a terminal (always with --progress).
LONG_INPUT_S = 10.0
#: `transcribe` cuts longer inputs into utterances with the VAD and decodes them one by one.
SEGMENT_ABOVE_S = 30.0
_FEED_S = 0.1  # `pipeline` streams its input in chunks of this length


class CliError(Exception):
    """A problem to report as `fastvoice: error: <message>` (exit status 1)."""


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal (at most every 0.1 s), plain
    lines elsewhere (at most one a second, for logs and `--progress` in pipes)."""

    WIDTH = 28

    def __init__(self, label: str, total_s: float, enabled: bool) -> None:
        self.label, self.total_s, self.enabled = label, total_s, enabled
        self.tty = sys.stderr.isatty()
        self._last = -1e9
        self._drawn = ""

    def update(self, done_s: float, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.1 if self.tty else 1.0)):
            return
        frac = min(1.0, done_s / self.total_s) if self.total_s > 0 else 1.0
        fill = int(frac * self.WIDTH)
        bar = "#" * fill + "-" * (self.WIDTH - fill)
        line = f"{self.label} [{bar}] {frac:4.0%} {done_s:.1f}/{self.total_s:.1f} {note}"
        if line == self._drawn:
            return
        self._last, self._drawn = now, line
        sys.stderr.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        sys.stderr.flush()

    def clear(self) -> None:
        """Make room for a line of output on a terminal."""
        if self.enabled and self.tty and self._drawn:
            sys.stderr.write("\r\x1b[K")
            self._drawn = ""

    def close(self, note: str = "") -> None:
        if self.enabled:
            self.update(self.total_s, note, force=True)
            if self.tty:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _progress(args: argparse.Namespace, label: str, total_s: float) -> Progress:
    on = bool(args.progress) or (sys.stderr.isatty() and total_s >= LONG_INPUT_S)
    return Progress(label, total_s, on)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a WAV file") from None


def _read_wav(path: Path) -> tuple[bytes, int]:
    """Mono PCM16 and the sample rate of a WAV file, with errors a user can act on."""
    data = _read_file(path)
    try:
        wav = audio.wav_decode(data)
    except ValueError as exc:
        raise CliError(f"{path} is not a readable WAV file: {exc}") from None
    pcm = audio.from_pcm16(wav.pcm16)
    if wav.channels > 1:
        pcm = audio.to_mono(pcm, wav.channels)
    return bytes(audio.to_pcm16(pcm)), wav.sample_rate


def _model_progress(enabled: bool) -> Callable[[str], None] | None:
    """Where the first load of a neural model reports (stderr), when progress is shown."""
    if not enabled:
        return None
    return lambda line: print(f"fastvoice: {line}", file=sys.stderr, flush=True)


def _provider(name: str | None, progress: bool = False) -> Any:
    from fastvoice.voice.providers import resolve_provider
    from fastvoice.voice.providers.local import LocalVoiceProvider

    provider = resolve_provider(name)
    if isinstance(provider, LocalVoiceProvider):
        provider = LocalVoiceProvider(provider.engines, progress=_model_progress(progress))
    return provider


def _echo(text: str) -> list[str]:
    return [f"You said: {text}" if text[-1:] in ".!?" else f"You said: {text}."]


def _workflow(name: str) -> Any:
    from fastvoice import voice

    if name == "echo":
        return voice.SimpleWorkflow(_echo)
    return voice.AgentWorkflow(
        agent={"instructions": "You are a helpful voice assistant. Answer in one or two short sentences."}
    )


def _write_wav(out: Path, pcm: bytes) -> float:
    out.write_bytes(audio.wav_encode(pcm, sample_rate=TTS_RATE))
    return len(pcm) / 2 / TTS_RATE


def _quote(text: str | None) -> str:
    return json.dumps(text or "", ensure_ascii=False)


async def _voice_demo(out: Path, source: Path | None) -> int:
    from fastvoice import voice

    t_start = time.perf_counter()
    if source is not None:
        pcm, rate = _read_wav(source)
        clip = voice.AudioInput(pcm, format="pcm16", sample_rate=rate)
    else:
        clip = voice.AudioInput(sample_wav())
    print(f"input       {source or 'bundled sample'}: {clip.sample_rate} Hz, {clip.duration_s:.2f} s")
    pipeline = voice.Pipeline(_workflow("echo"), provider=_provider("local", sys.stderr.isatty()))
    print(f"provider    offline: {pipeline.stt_model.model_name} + {pipeline.tts_model.model_name}")
    t0 = time.perf_counter()
    result = await pipeline.run(clip)
    parts: list[bytes] = []
    first_audio: float | None = None
    async for event in result:
        if isinstance(event, voice.VoiceStreamEventAudio):
            first_audio = first_audio if first_audio is not None else time.perf_counter() - t0
            parts.append(event.data)
        elif isinstance(event, voice.VoiceStreamEventError):
            raise CliError(f"the pipeline failed: {event.error}")
    total = time.perf_counter() - t0
    turn = result.turns[-1] if result.turns else None
    if turn is None:
        raise CliError("the pipeline produced no turn")
    stt = f" (speech to text {_ms(turn.stt_s)})" if turn.stt_s is not None else ""
    print(f"transcript  {_quote(turn.transcript)}{stt}")
    print(f"reply       {_quote(turn.reply)}")
    if turn.first_audio_s is not None and first_audio is not None:
        print(
            f"first audio {_ms(turn.first_audio_s)} after the transcript, {_ms(first_audio)} after the start"
        )
    seconds = _write_wav(out, b"".join(parts))
    print(
        f"output      {out}: {TTS_RATE} Hz mono PCM16, {seconds:.2f} s "
        f"(pipeline {_ms(total)}, real-time factor {total / max(clip.duration_s, 1e-9):.2f}; "
        f"with start-up {_ms(time.perf_counter() - t_start)})"
    )
    return 0


class _Pace:
    """Tells the `pipeline` feeder to wait while a turn is transcribed or answered, so the
    progress bar follows the work instead of the (instant) reading of the file. Speech-to-text
    is seen through the pipeline's telemetry events, the answer through its lifecycle events."""

    def __init__(self) -> None:
        self.transcribing = 0
        self.in_turn = False
        self.handler_id = f"fastvoice-cli-pace-{id(self)}"

    def __enter__(self) -> _Pace:
        from fastvoice import telemetry

        names = [("fastvoice", "voice", "stt", s) for s in ("start", "complete", "exception")]
        telemetry.attach_many(self.handler_id, names, self._on_stt)
        return self

    def __exit__(self, *exc: object) -> None:
        from fastvoice import telemetry

        telemetry.detach(self.handler_id)

    def _on_stt(self, event: tuple[str, ...], _m: object, _md: object, _c: object) -> None:
        self.transcribing = self.transcribing + 1 if event[-1] == "start" else max(0, self.transcribing - 1)

    @property
    def busy(self) -> bool:
        return self.transcribing > 0 or self.in_turn


async def _pipeline(args: argparse.Namespace) -> int:
    from fastvoice import voice

    pcm, rate = _read_wav(args.input)
    duration = len(pcm) / 2 / rate
    pipeline = voice.Pipeline(
        _workflow(args.workflow), provider=_provider(args.provider, args.progress or sys.stderr.isatty())
    )
    progress = _progress(args, "pipeline", duration)
    parts: list[bytes] = []
    t0 = time.perf_counter()
    with _Pace() as pace:
        if args.single_turn:
            result = await pipeline.run(voice.AudioInput(pcm, format="pcm16", sample_rate=rate))
            feeder: asyncio.Task[None] | None = None
        else:
            inp = voice.StreamedAudioInput(sample_rate=rate)
            result = await pipeline.run_streamed(inp)

            async def feed() -> None:
                step = 2 * max(1, int(rate * _FEED_S))
                for i in range(0, len(pcm), step):
                    await inp.push(pcm[i : i + step])
                    progress.update(min(i + step, len(pcm)) / 2 / rate, f"s, turns {len(result.turns)}")
                    await asyncio.sleep(0)
                    while pace.busy and not result.done:
                        await asyncio.sleep(0.02)
                await inp.close()

            feeder = asyncio.create_task(feed())
        try:
            async for event in result:
                if isinstance(event, voice.VoiceStreamEventAudio):
                    parts.append(event.data)
                elif isinstance(event, voice.VoiceStreamEventLifecycle):
                    pace.in_turn = event.event == "turn_started"
                    if event.event == "turn_ended" and result.turns:
                        _print_turn(len(result.turns), result.turns[-1], progress)
                elif isinstance(event, voice.VoiceStreamEventError) and (
                    not isinstance(event.error, voice.NoSpeechError) or args.single_turn
                ):
                    progress.clear()
                    print(f"fastvoice: warning: {event.error}", file=sys.stderr)
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
    progress.close(f"s, turns {len(result.turns)}")
    if not parts:
        if result.errors:
            raise CliError(f"no reply: {result.errors[0]}")
        raise CliError(f"no speech found in {args.input}")
    seconds = _write_wav(args.output, b"".join(parts))
    total = time.perf_counter() - t0
    print(
        f"wrote {args.output}: {len(result.turns)} turn(s), {seconds:.2f} s at {TTS_RATE} Hz "
        f"(input {duration:.2f} s processed in {total:.2f} s, "
        f"real-time factor {total / max(duration, 1e-9):.2f})"
    )
    return 0


def _print_turn(n: int, turn: Any, progress: Progress) -> None:
    progress.clear()
    stt = f"stt {_ms(turn.stt_s)}" if turn.stt_s is not None else "greeting"
    first = f", first audio {_ms(turn.first_audio_s)}" if turn.first_audio_s is not None else ""
    print(f"turn {n}  heard {_quote(turn.transcript)}\n        reply {_quote(turn.reply)}  ({stt}{first})")
    sys.stdout.flush()


async def _transcribe(args: argparse.Namespace) -> int:
    from fastvoice import voice
    from fastvoice.voice._vad import make_turn_detector

    pcm, rate = _read_wav(args.input)
    duration = len(pcm) / 2 / rate
    stt = _provider(args.provider, args.progress or sys.stderr.isatty()).get_stt_model(None)
    settings = voice.STTSettings(language=args.language)
    if duration <= SEGMENT_ABOVE_S:
        segments = [pcm]
    else:  # long input: utterance by utterance, so memory and progress stay bounded
        detector = make_turn_detector(rate)
        segments = detector.push(pcm)
        if (last := detector.flush()) is not None:
            segments.append(last)
    progress = _progress(args, "transcribe", duration)
    texts: list[str] = []
    done = 0
    for seg in segments:
        text = await stt.transcribe(voice.AudioInput(seg, format="pcm16", sample_rate=rate), settings)
        if text.strip():
            texts.append(text.strip())
        done += len(seg)
        progress.update(min(done / 2 / rate, duration), f"s, segments {len(texts)}")
    progress.close(f"s, segments {len(texts)}")
    if not texts:
        print(f"fastvoice: no speech recognised in {args.input}", file=sys.stderr)
        return 0
    print(" ".join(texts))
    return 0


async def _speak(args: argparse.Namespace) -> int:
    from fastvoice import voice

    text = sys.stdin.read() if args.text == "-" else args.text
    sentences = voice.split_sentences(text)
    if not sentences:
        raise CliError("nothing to say: the text is empty")
    tts = _provider(args.provider, args.progress or sys.stderr.isatty()).get_tts_model(None)
    settings = voice.TTSSettings(voice=args.voice, speed=args.speed)
    progress = _progress(args, "speak", float(len(sentences)))
    progress.enabled = bool(args.progress) or (sys.stderr.isatty() and len(sentences) > 3)
    t0 = time.perf_counter()
    parts: list[bytes] = []
    for i, sentence in enumerate(sentences):
        async for chunk in tts.run(sentence, settings):
            parts.append(bytes(chunk))
        progress.update(i + 1, "sentences")
    progress.close("sentences")
    seconds = _write_wav(args.output, b"".join(parts))
    print(f"wrote {args.output}: {seconds:.2f} s at {TTS_RATE} Hz in {_ms(time.perf_counter() - t0)}")
    return 0


def _serve(argv: list[str]) -> int:
    """`fastvoice serve ...`: hand the rest of the command line to `fastvoice.serve.cli_main`."""
    try:
        from fastvoice.serve import cli_main  # type: ignore[import-not-found, unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("fastvoice"):
            raise CliError(
                "`fastvoice serve` is not available: this build has no fastvoice.serve module"
            ) from None
        raise CliError(f"`fastvoice serve` needs the {exc.name!r} package: {exc}") from None
    except ImportError as exc:
        raise CliError(f"`fastvoice serve` is not available: {exc}") from None
    return int(cli_main(argv) or 0)


def _phone(argv: list[str]) -> int:
    """`fastvoice phone ...`: hand the rest of the command line to `fastvoice.telephony.cli`."""
    try:
        from fastvoice.telephony.cli import cli_main
    except ModuleNotFoundError as exc:
        raise CliError(
            f"`fastvoice phone` needs the {exc.name!r} package (pip install 'fastvoice[phone]')"
        ) from None
    return int(cli_main(argv) or 0)


def _web(argv: list[str]) -> int:
    """`fastvoice web ...`: hand the rest of the command line to `fastvoice.web.cli`."""
    try:
        from fastvoice.web.cli import cli_main
    except ModuleNotFoundError as exc:
        hint = "pip install 'fastvoice[phone]'"
        raise CliError(f"`fastvoice web` needs the {exc.name!r} package ({hint})") from None
    return int(cli_main(argv) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastvoice", description=__doc__.split("\n\n")[1])
    parser.add_argument("--version", action="version", version=f"fastvoice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def providers(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--provider",
            choices=["local", "light", "openai"],
            default=None,
            help="speech engines: local (Whisper + Piper, offline), light (PocketSphinx + eSpeak NG, "
            "offline) or openai (default: openai when an API key is found, else local)",
        )
        p.add_argument(
            "--progress", action="store_true", help="show progress on stderr even when not a terminal"
        )

    demo = sub.add_parser("demo", help="run the voice pipeline offline on the bundled sample, write out.wav")
    demo.add_argument("input", nargs="?", type=Path, help="a WAV file instead of the bundled sample")
    demo.add_argument("-o", "--output", type=Path, default=Path("out.wav"), help="where to write the reply")

    ademo = sub.add_parser("audio-demo", help="the audio core alone: resample, G.711, wire frames")
    ademo.add_argument("input", nargs="?", type=Path, help="a WAV file instead of the bundled sample")
    ademo.add_argument("-o", "--output", type=Path, default=Path("out.wav"), help="where to write the result")

    pipe = sub.add_parser("pipeline", help="answer the speech in a WAV file, write the replies as a WAV")
    pipe.add_argument("input", type=Path, help="input WAV (any rate, mono or stereo)")
    pipe.add_argument("-o", "--output", type=Path, default=Path("out.wav"), help="where to write the replies")
    pipe.add_argument(
        "--workflow", choices=["echo", "agent"], default="echo", help="what answers (default: echo)"
    )
    pipe.add_argument(
        "--single-turn",
        action="store_true",
        help="treat the whole file as one turn (default: cut turns with the VAD)",
    )
    providers(pipe)

    tr = sub.add_parser("transcribe", help="print the text spoken in a WAV file")
    tr.add_argument("input", type=Path, help="input WAV")
    tr.add_argument("--language", default=None, help="language hint, e.g. en")
    providers(tr)

    sp = sub.add_parser("speak", help="synthesise text to a 24 kHz WAV file")
    sp.add_argument("text", help='the text to say ("-" reads standard input)')
    sp.add_argument("-o", "--output", type=Path, default=Path("out.wav"), help="where to write the speech")
    sp.add_argument("--voice", default="nova", help="voice name (OpenAI names map to eSpeak voices offline)")
    sp.add_argument("--speed", type=float, default=None, help="speaking rate factor (0.25-4)")
    providers(sp)

    sub.add_parser("serve", help="run the fastvoice server (arguments go to fastvoice.serve)", add_help=False)
    sub.add_parser("phone", help="serve phone calls (Twilio, Telnyx, Plivo) to an agent", add_help=False)
    sub.add_parser("web", help="a page to talk to an agent from a browser", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["serve"]:
            return _serve(args_list[1:])
        if args_list[:1] == ["phone"]:
            return _phone(args_list[1:])
        if args_list[:1] == ["web"]:
            return _web(args_list[1:])
        args = _parser().parse_args(args_list)
        if args.command == "audio-demo":
            return run_audio_demo(args.output, args.input)
        if args.command == "demo":
            return asyncio.run(_voice_demo(args.output, args.input))
        command = {"pipeline": _pipeline, "transcribe": _transcribe, "speak": _speak}[args.command]
        return asyncio.run(command(args))
    except KeyboardInterrupt:
        print("fastvoice: interrupted", file=sys.stderr)
        return 130
    except (CliError, OSError, ValueError, VoiceError) as exc:
        print(f"fastvoice: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # Imported here: fastvoice.realtime pulls in pydantic, which the offline commands do not need.
        from fastvoice.realtime.auth import MissingAPIKeyError

        if not isinstance(exc, MissingAPIKeyError):
            raise
        print(f"fastvoice: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
