"""The voice pipeline: speech in, the workflow's reply out as speech, streamed.

Per turn: transcribe (STT), run the workflow, split its text into sentences as it streams,
start TTS on each sentence at once (up to `Config.tts_concurrency` ahead), and emit audio
events in sentence order as soon as TTS bytes arrive. Errors never escape as exceptions from
the session task: they become `VoiceStreamEventError`s, and `session_ended` always comes last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from fastvoice._fastvoice import AudioFormatError
from fastvoice.voice._channel import Channel
from fastvoice.voice._readahead import ReadAhead, Segment
from fastvoice.voice._telemetry import _emit
from fastvoice.voice._vad import make_turn_detector
from fastvoice.voice.config import TTS_SAMPLE_RATE, Config
from fastvoice.voice.events import NoSpeechError, STTError, TTSError, VoiceError
from fastvoice.voice.input import AudioInput, StreamedAudioInput
from fastvoice.voice.providers import (
    STTModel,
    TTSModel,
    TurnTranscription,
    VoiceModelProvider,
    resolve_provider,
)
from fastvoice.voice.result import StreamedAudioResult, Turn
from fastvoice.voice.text import stream_sentences
from fastvoice.voice.workflow import Workflow, aclose_iterator, text_pieces, workflow_greeting

_Audio = Channel[bytes | BaseException | None]
_log = logging.getLogger("fastvoice")


def _output_dtype(dtype: Any) -> str | None:
    if dtype is None or dtype == "bytes" or dtype is bytes:
        return None
    try:
        name: str = np.dtype(dtype).name
    except TypeError as exc:
        raise ValueError(f'TTSSettings.dtype must be None, "int16" or "float32", got {dtype!r}') from exc
    if name not in ("int16", "float32"):
        raise ValueError(f'TTSSettings.dtype must be None, "int16" or "float32", got {dtype!r}')
    return name


async def _once(text: str) -> AsyncIterator[str]:
    yield text


class Pipeline:
    """STT → workflow → TTS.

    `provider`: `None` picks OpenAI when an API key is found and the offline engines otherwise;
    `"openai"`, `"local"` (Whisper + Piper) or `"light"` (PocketSphinx + eSpeak NG) choose; or pass
    any `VoiceModelProvider`. A provider the
    pipeline created itself (from `None` or a name) is closed by `aclose()` / `async with`; one you
    pass in stays yours to close.
    """

    def __init__(
        self,
        workflow: Workflow,
        config: Config | None = None,
        provider: VoiceModelProvider | str | None = None,
    ) -> None:
        if not callable(getattr(workflow, "run", None)):
            raise TypeError(f"workflow must have a run(text) method, got {type(workflow).__name__}")
        self.workflow = workflow
        self.config = config if config is not None else Config()
        if self.config.tts_concurrency < 1:
            raise ValueError(f"tts_concurrency must be at least 1, got {self.config.tts_concurrency}")
        buffered = self.config.max_buffered_audio_s
        if not isinstance(buffered, int | float) or not buffered > 0:
            raise ValueError(f"max_buffered_audio_s must be a positive number of seconds, got {buffered!r}")
        self._readahead_bytes = max(2, round(buffered * TTS_SAMPLE_RATE) * 2)
        self._dtype = _output_dtype(self.config.tts_settings.dtype)
        self.provider = resolve_provider(provider)
        self._owns_provider = provider is None or isinstance(provider, str)
        self._provider_name = type(self.provider).__name__
        self._stt: STTModel | None = None
        self._tts: TTSModel | None = None

    @property
    def stt_model(self) -> STTModel:
        if self._stt is None:
            self._stt = self.provider.get_stt_model(self.config.stt_settings.model)
        return self._stt

    @property
    def tts_model(self) -> TTSModel:
        if self._tts is None:
            self._tts = self.provider.get_tts_model(self.config.tts_settings.model)
        return self._tts

    async def aclose(self) -> None:
        """Release the connections of a provider this pipeline created (e.g. OpenAI's HTTP session)."""
        close = getattr(self.provider, "aclose", None) if self._owns_provider else None
        if close is not None:
            await close()

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def run(self, audio_input: AudioInput) -> StreamedAudioResult:
        """One turn on a clip (after the greeting turn, if the workflow has one)."""
        if not isinstance(audio_input, AudioInput):
            streamed = isinstance(audio_input, StreamedAudioInput)
            hint = " (use run_streamed for StreamedAudioInput)" if streamed else ""
            raise TypeError(f"run() takes an AudioInput, got {type(audio_input).__name__}{hint}")
        return self._start(lambda result: self._single_turn(audio_input, result))

    async def run_streamed(self, audio_input: StreamedAudioInput) -> StreamedAudioResult:
        """Turns detected in live input, answered one after the other until the input closes.

        Turns are cut by the Silero VAD when onnxruntime is installed, else by the native energy VAD
        (`fastvoice.audio.VAD`); settings and the choice in `Config.turn_detection`.
        A failed turn reports its error and the session goes on with the next one.
        """
        if not isinstance(audio_input, StreamedAudioInput):
            raise TypeError(f"run_streamed() takes a StreamedAudioInput, got {type(audio_input).__name__}")
        audio_input._claim()
        return self._start(lambda result: self._streamed_turns(audio_input, result))

    def _start(self, body: Callable[[StreamedAudioResult], Awaitable[None]]) -> StreamedAudioResult:
        # Resolve the models now: a missing engine is a setup error for the caller, not a turn error.
        _ = self.stt_model, self.tts_model
        result = StreamedAudioResult(self._dtype, self._readahead_bytes)
        result._start(self._session(result, body))
        return result

    async def _session(
        self, result: StreamedAudioResult, body: Callable[[StreamedAudioResult], Awaitable[None]]
    ) -> None:
        meta = {"workflow_name": self.config.workflow_name, "provider": self._provider_name}
        t0 = time.perf_counter()
        _emit(("fastvoice", "voice", "pipeline", "start"), {"system_time": time.time()}, meta)
        _log.debug(
            "fastvoice voice: session started (provider %s, stt %s, tts %s, read-ahead %d bytes)",
            self._provider_name,
            self.stt_model.model_name,
            self.tts_model.model_name,
            self._readahead_bytes,
        )
        cancelled = False
        try:
            try:
                greeting = workflow_greeting(self.workflow)
            except Exception as exc:
                result._error(exc)
                greeting = None
            if greeting:
                await self._turn(result, None, _once(greeting))
            await body(result)
        except Exception as exc:  # a bug in a turn's bookkeeping must still end the session
            result._error(exc)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            result._lifecycle("session_ended")
            result._session_over()
            _log.debug(
                "fastvoice voice: session %s after %.0f ms (%d turns, %d errors, read-ahead peak %d bytes)",
                "cancelled" if cancelled else "ended",
                (time.perf_counter() - t0) * 1000,
                len(result.turns),
                len(result.errors),
                result._readahead.peak,
            )
            _emit(
                ("fastvoice", "voice", "pipeline", "stop"),
                {
                    "duration": time.perf_counter() - t0,
                    "turns": len(result.turns),
                    "errors": len(result.errors),
                },
                meta,
            )

    async def _single_turn(self, audio_input: AudioInput, result: StreamedAudioResult) -> None:
        t0 = time.perf_counter()
        try:
            transcript = await self._transcribe(audio_input)
        except Exception as exc:
            result._error(exc)
            return
        await self._turn(result, transcript, self._reply(transcript), time.perf_counter() - t0)

    async def _streamed_turns(self, audio_input: StreamedAudioInput, result: StreamedAudioResult) -> None:
        session = self.stt_model.create_session(audio_input, self.config.stt_settings)
        if session is not None:  # the model detects turns itself (e.g. OpenAI's server VAD)
            transcripts = session.transcripts()
            try:
                async for transcript in transcripts:
                    if isinstance(transcript, BaseException):
                        result._error(transcript)
                    else:
                        _log.debug("fastvoice voice: stt turn transcribed (%d chars)", len(transcript))
                        await self._turn(result, transcript, self._reply(transcript))
            finally:  # also when cancelled mid-turn: the session's socket and tasks end now
                await aclose_iterator(transcripts)
            return
        try:  # off the event loop: the first Silero detector imports onnxruntime and loads the model
            detector = await asyncio.to_thread(
                make_turn_detector, audio_input.sample_rate, self.config.turn_detection
            )
        except Exception as exc:  # e.g. engine="silero" without onnxruntime: nothing can be heard
            result._error(exc)
            return
        turns: Channel[tuple[bytes, TurnTranscription | None] | None] = Channel()
        rate = audio_input.sample_rate
        td = self.config.turn_detection
        # While idle, the last stretch of input: a turn that starts is heard from its pre-roll on.
        keep = 2 * rate * (td.prefix_ms + td.min_speech_ms + 100) // 1000
        recent = bytearray()
        live: TurnTranscription | None = None  # the turn being heard as it is spoken

        async def on_partial(text: str) -> None:
            if self.config.partial_transcripts:
                result._transcript(text, False)

        def open_turn() -> TurnTranscription | None:
            try:
                return self.stt_model.open_turn(rate, self.config.stt_settings, on_partial)
            except Exception as exc:  # a model that cannot stream this turn: it is transcribed whole
                _log.debug("fastvoice voice: streamed stt unavailable for this turn (%r)", exc)
                return None

        async def segment() -> None:
            nonlocal live
            try:
                async for chunk in audio_input.chunks():
                    was_in_turn = detector.in_turn
                    done = detector.push(chunk)
                    for turn in done:
                        turns.put_nowait((turn, live))
                        live = None
                    if detector.in_turn:
                        if live is not None:
                            live.feed(bytes(chunk))
                        elif not was_in_turn and not done:
                            # Only at the turn's start (the model may load mid-turn: that turn goes whole).
                            if (live := open_turn()) is not None:
                                live.feed(bytes(recent) + bytes(chunk))
                    recent.extend(chunk)
                    del recent[: max(0, len(recent) - keep)]
                if (last := detector.flush()) is not None:
                    turns.put_nowait((last, live))
                    live = None
            except Exception as exc:
                result._error(exc)
            finally:
                turns.put_nowait(None)

        segmenter = asyncio.create_task(segment())
        pending: list[TurnTranscription] = []
        try:
            while (item := await turns.get()) is not None:
                pcm, heard = item
                clip = AudioInput(pcm, format="pcm16", sample_rate=rate)
                t0 = time.perf_counter()
                try:
                    transcript = await self._transcribe(clip, heard)
                except Exception as exc:
                    result._error(exc)
                    continue
                if self.config.partial_transcripts and heard is not None:
                    result._transcript(transcript, True)
                await self._turn(result, transcript, self._reply(transcript), time.perf_counter() - t0)
        finally:
            segmenter.cancel()
            await asyncio.gather(segmenter, return_exceptions=True)
            # Turns heard but never answered (the session stopped): their decodes end unobserved.
            while len(turns):
                left = await turns.get()
                if left is not None and left[1] is not None:
                    pending.append(left[1])
            if live is not None:
                pending.append(live)
            await asyncio.gather(*(t.abort() for t in pending), return_exceptions=True)

    async def _transcribe(self, audio_input: AudioInput, heard: TurnTranscription | None = None) -> str:
        """The transcript of `audio_input`, or of the turn `heard` while it was spoken (same audio)."""
        pcm, rate = audio_input.decode()
        if not pcm:
            raise NoSpeechError("the audio input is empty")
        stt = self.stt_model
        meta = {"model": stt.model_name}
        t0 = time.perf_counter()
        _emit(("fastvoice", "voice", "stt", "start"), {"system_time": time.time()}, meta)
        try:
            if heard is not None:
                text = await heard.finish()
            else:
                text = await stt.transcribe(audio_input, self.config.stt_settings)
        except (VoiceError, AudioFormatError) as exc:
            _emit(("fastvoice", "voice", "stt", "exception"), {"duration": time.perf_counter() - t0}, meta)
            _log.debug("fastvoice voice: stt %s failed (%s)", stt.model_name, type(exc).__name__)
            raise
        except Exception as exc:
            _emit(("fastvoice", "voice", "stt", "exception"), {"duration": time.perf_counter() - t0}, meta)
            _log.debug("fastvoice voice: stt %s failed (%s)", stt.model_name, type(exc).__name__)
            raise STTError(f"speech to text failed: {exc}") from exc
        elapsed = time.perf_counter() - t0
        _emit(
            ("fastvoice", "voice", "stt", "complete"),
            {"duration": elapsed, "audio_duration": len(pcm) / 2 / rate},
            {**meta, "transcript": text},
        )
        _log.debug(
            "fastvoice voice: stt %s/%s: %.2f s of audio (%d bytes at %d Hz) -> %d chars in %.0f ms",
            self._provider_name,
            stt.model_name,
            len(pcm) / 2 / rate,
            len(pcm),
            rate,
            len(text) if isinstance(text, str) else 0,
            elapsed * 1000,
        )
        if not isinstance(text, str) or not text.strip():
            raise NoSpeechError("no speech was recognised in the audio (silence or noise only)")
        return text.strip()

    async def _reply(self, transcript: str) -> AsyncIterator[str]:
        # An async generator, so that run() itself is called (and may raise) inside the turn.
        t0 = time.perf_counter()
        name = type(self.workflow).__name__
        pieces = text_pieces(self.workflow.run(transcript))
        chars, first = 0, True
        try:
            async for piece in pieces:
                if first:
                    first = False
                    _log.debug(
                        "fastvoice voice: workflow %s first text after %.0f ms",
                        name,
                        (time.perf_counter() - t0) * 1000,
                    )
                chars += len(piece)
                yield piece
            _log.debug(
                "fastvoice voice: workflow %s done in %.0f ms (%d chars)",
                name,
                (time.perf_counter() - t0) * 1000,
                chars,
            )
        finally:
            await aclose_iterator(pieces)

    async def _turn(
        self,
        result: StreamedAudioResult,
        transcript: str | None,
        pieces: AsyncIterator[str],
        stt_s: float | None = None,
    ) -> None:
        turn = Turn(transcript, stt_s=stt_s)
        result.turns.append(turn)
        result._lifecycle("turn_started")
        try:
            await self._speak(result, turn, pieces)
        except Exception as exc:
            result._error(exc)
        finally:
            result._lifecycle("turn_ended")

    async def _speak(self, result: StreamedAudioResult, turn: Turn, pieces: AsyncIterator[str]) -> None:
        """Sentences → concurrent TTS tasks → audio events in sentence order.

        At most `tts_concurrency` sentences are in synthesis at once (the workflow is not read
        further meanwhile), and their audio waits in the result's bounded read-ahead."""
        limit = asyncio.Semaphore(self.config.tts_concurrency)
        readahead = result._readahead
        segments: Channel[tuple[Segment, _Audio] | BaseException | None] = Channel()
        tasks: set[asyncio.Task[None]] = set()
        pending: list[Segment] = []  # segments not yet fully emitted, to release on the way out

        async def produce() -> None:
            sentences = stream_sentences(pieces)
            try:
                async for sentence in sentences:
                    turn.sentences.append(sentence)
                    await limit.acquire()  # backpressure to the workflow
                    seg, queue = Segment(len(turn.sentences)), Channel[bytes | BaseException | None]()
                    pending.append(seg)
                    task = asyncio.create_task(self._synthesize(sentence, seg, queue, readahead, limit))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    segments.put_nowait((seg, queue))
            except Exception as exc:
                segments.put_nowait(exc)
            finally:
                segments.put_nowait(None)
                await aclose_iterator(sentences)
                await aclose_iterator(pieces)

        producer = asyncio.create_task(produce())
        try:
            while (item := await segments.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                seg, queue = item
                readahead.set_head(seg)
                carry = b""  # providers may split a sample across chunks: emit whole samples only
                while (chunk := await queue.get()) is not None:
                    if isinstance(chunk, BaseException):
                        raise chunk
                    data = carry + chunk if carry else chunk
                    cut = len(data) & ~1
                    carry = data[cut:]
                    readahead.moved(seg, len(chunk), cut)
                    if cut:
                        if turn.first_audio_s is None:
                            turn.first_audio_s = time.perf_counter() - turn.started
                            _log.debug(
                                "fastvoice voice: turn %d first audio after %.0f ms",
                                len(result.turns),
                                turn.first_audio_s * 1000,
                            )
                        result._audio(data[:cut])
                pending.remove(seg)
        finally:
            for task in (producer, *tasks):
                task.cancel()
            await asyncio.gather(producer, *tasks, return_exceptions=True)
            for seg in pending:
                readahead.discard(seg)
            readahead.set_head(None)

    async def _synthesize(
        self,
        sentence: str,
        seg: Segment,
        queue: _Audio,
        readahead: ReadAhead,
        limit: asyncio.Semaphore,
    ) -> None:
        tts = self.tts_model
        meta = {"model": tts.model_name, "text": sentence}
        t0 = time.perf_counter()
        total = 0
        first: float | None = None
        stream: AsyncIterator[bytes] | None = None
        try:
            _emit(("fastvoice", "voice", "tts", "start"), {"system_time": time.time()}, meta)
            stream = aiter(tts.run(sentence, self.config.tts_settings))
            while True:
                await readahead.acquire(seg)  # wait while the read-ahead is full
                n = 0
                try:
                    chunk = await anext(stream)
                    n = len(chunk)
                except StopAsyncIteration:
                    break
                finally:
                    readahead.pulled(seg, n)
                if first is None:
                    first = time.perf_counter() - t0
                total += n
                _emit(("fastvoice", "voice", "tts", "chunk"), {"bytes": n}, meta)
                queue.put_nowait(bytes(chunk))
            elapsed = time.perf_counter() - t0
            _emit(
                ("fastvoice", "voice", "tts", "complete"),
                {"duration": elapsed, "bytes": total, "first_chunk": first or 0.0},
                meta,
            )
            _log.debug(
                "fastvoice voice: tts %s/%s sentence %d (%d chars): %d bytes, first audio %.0f ms, %.0f ms",
                self._provider_name,
                tts.model_name,
                seg.index,
                len(sentence),
                total,
                (first or 0.0) * 1000,
                elapsed * 1000,
            )
        except VoiceError as exc:
            _log.debug("fastvoice voice: tts %s failed (%s)", tts.model_name, type(exc).__name__)
            queue.put_nowait(exc)
        except Exception as exc:
            _log.debug("fastvoice voice: tts %s failed (%s)", tts.model_name, type(exc).__name__)
            err = TTSError(f"text to speech failed: {exc}")
            err.__cause__ = exc
            queue.put_nowait(err)
        finally:
            queue.put_nowait(None)
            limit.release()
            if stream is not None:
                await aclose_iterator(stream)
