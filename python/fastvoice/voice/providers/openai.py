"""OpenAI providers: `POST /audio/transcriptions` and `POST /audio/speech` over aiohttp, and the
Realtime transcription session (`/realtime?intent=transcription`, over fastvoice's native
WebSocket transport) for streamed input, where the server detects the turns.

```python
async with OpenAIVoiceModelProvider() as provider:      # key by fastvoice's precedence
    result = await voice.Pipeline(workflow, provider=provider).run(voice.AudioInput(wav))
```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any, Self

import aiohttp
import numpy as np

from fastvoice import audio, transport
from fastvoice.voice._telemetry import _emit
from fastvoice.voice.config import STTSettings, TTSSettings
from fastvoice.voice.events import STTError, TTSError
from fastvoice.voice.input import AudioInput, StreamedAudioInput
from fastvoice.voice.providers import StreamedTranscription, STTModel, TTSModel, VoiceModelProvider
from fastvoice.voice.providers._http import (
    HTTPClient,
    OpenAIStatusError,
    RetryPolicy,
    websocket_url,
)

__all__ = [
    "OpenAISTTModel",
    "OpenAISTTStatusError",
    "OpenAITTSModel",
    "OpenAITTSStatusError",
    "OpenAIVoiceModelProvider",
    "RetryPolicy",
]

logger = logging.getLogger("fastvoice")

#: The Realtime API's only PCM input rate.
REALTIME_RATE = 24000
DEFAULT_TURN_DETECTION: dict[str, Any] = {"type": "server_vad", "silence_duration_ms": 500}


class OpenAISTTStatusError(OpenAIStatusError, STTError):
    """`POST /audio/transcriptions` (or the transcription session) answered with an error."""


class OpenAITTSStatusError(OpenAIStatusError, TTSError):
    """`POST /audio/speech` answered with an error."""


class OpenAISTTModel(STTModel):
    """`gpt-4o-transcribe`, `gpt-4o-mini-transcribe`, `whisper-1`...

    One clip: a WAV of the input at its own rate goes to `/audio/transcriptions` (the server
    resamples; doing it here would only add work). Streamed input: a Realtime transcription
    session with server turn detection (`turn_detection`, default server VAD with 500 ms of
    silence), the audio converted to 24 kHz by the native `Resampler` as it arrives.
    """

    def __init__(self, model: str, client: HTTPClient, turn_detection: dict[str, Any] | None = None) -> None:
        self._model = model
        self._client = client
        self.turn_detection = dict(turn_detection or DEFAULT_TURN_DETECTION)

    @property
    def model_name(self) -> str:
        return self._model

    async def transcribe(self, audio_input: AudioInput, settings: STTSettings) -> str:
        pcm, rate = audio_input.decode()
        wav = audio.wav_encode(pcm, sample_rate=rate)

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", wav, filename="audio.wav", content_type="audio/wav")
            data.add_field("model", self._model)
            data.add_field("response_format", "json")
            if settings.language:
                data.add_field("language", settings.language)
            if settings.prompt:
                data.add_field("prompt", settings.prompt)
            if settings.temperature is not None:
                data.add_field("temperature", str(settings.temperature))
            return data

        resp = await self._client.request(
            "/audio/transcriptions",
            "speech to text",
            OpenAISTTStatusError,
            lambda session, url: session.post(url, data=form()),
        )
        try:
            body = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise STTError(f"speech to text returned an unreadable body: {exc}") from exc
        finally:
            resp.release()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise STTError("speech to text returned no 'text' field")
        return text

    def create_session(self, audio_input: StreamedAudioInput, settings: STTSettings) -> StreamedTranscription:
        return RealtimeTranscription(self, audio_input, settings)

    def _session_update(self, settings: STTSettings) -> dict[str, Any]:
        transcription: dict[str, Any] = {"model": self._model}
        if settings.language:
            transcription["language"] = settings.language
        if settings.prompt:
            transcription["prompt"] = settings.prompt
        return {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": REALTIME_RATE},
                        "transcription": transcription,
                        "turn_detection": self.turn_detection,
                    }
                },
            },
        }


class RealtimeTranscription(StreamedTranscription):
    """One Realtime transcription session over a `StreamedAudioInput`.

    Yields each turn's final transcript (`...input_audio_transcription.completed`); partial
    transcripts (`.delta`) go to `on_partial` and to telemetry as
    `("fastvoice", "voice", "stt", "partial")`. A turn the server failed to transcribe yields an
    `STTError` (the session goes on); a broken connection raises.
    """

    def __init__(self, model: OpenAISTTModel, audio_input: StreamedAudioInput, settings: STTSettings) -> None:
        self._model = model
        self._input = audio_input
        self._settings = settings
        self.partials: dict[str, str] = {}
        self.final_timeout = 30.0

    async def transcripts(self) -> AsyncIterator[str | STTError]:
        client = self._model._client
        url = websocket_url(client.base_url, "/realtime", "intent=transcription")
        meta = {"model": self._model.model_name}
        logger.debug("fastvoice voice: transcription session (%s) connecting", self._model.model_name)
        conn = await transport.connect(url, headers=client.auth_headers)
        sender: asyncio.Task[None] | None = None
        turns = 0
        try:
            await self._expect(conn, "session.created")
            await conn.send_text(json.dumps(self._model._session_update(self._settings)))
            await self._expect(conn, "session.updated")
            final_id = f"event_{uuid.uuid4().hex[:20]}"
            sender = asyncio.create_task(self._send_audio(conn, final_id))
            pending: set[str] = set()
            cleared = False
            t0 = time.perf_counter()
            while not (cleared and not pending):
                # Once all audio is sent, a silent server must not hang the pipeline.
                if sender.done() and (failed := sender.exception()) is not None:
                    raise STTError(f"sending audio to the transcription session failed: {failed}") from failed
                timeout = self.final_timeout if sender.done() else None
                try:
                    event = await asyncio.wait_for(self._recv(conn), timeout)
                except TimeoutError as exc:
                    raise STTError(f"no final transcript within {self.final_timeout} s") from exc
                etype = event.get("type")
                item = str(event.get("item_id", ""))
                if etype == "input_audio_buffer.speech_started":
                    t0 = time.perf_counter()
                    _emit(("fastvoice", "voice", "stt", "start"), {"system_time": time.time()}, meta)
                elif etype == "input_audio_buffer.committed":
                    pending.add(item)
                elif etype == "input_audio_buffer.cleared":
                    cleared = True
                elif etype == "conversation.item.input_audio_transcription.delta":
                    text = self.partials.get(item, "") + str(event.get("delta", ""))
                    self.partials[item] = text
                    _emit(("fastvoice", "voice", "stt", "partial"), {}, {**meta, "transcript": text})
                elif etype == "conversation.item.input_audio_transcription.completed":
                    pending.discard(item)
                    text = str(event.get("transcript", ""))
                    _emit(
                        ("fastvoice", "voice", "stt", "complete"),
                        {"duration": time.perf_counter() - t0},
                        {**meta, "transcript": text},
                    )
                    turns += 1
                    logger.debug(
                        "fastvoice voice: transcription session turn %d: %d chars in %.0f ms",
                        turns,
                        len(text),
                        (time.perf_counter() - t0) * 1000,
                    )
                    if text.strip():
                        yield text.strip()
                elif etype == "conversation.item.input_audio_transcription.failed":
                    pending.discard(item)
                    _emit(
                        ("fastvoice", "voice", "stt", "exception"),
                        {"duration": time.perf_counter() - t0},
                        meta,
                    )
                    message = (event.get("error") or {}).get("message", "transcription failed")
                    yield STTError(f"the transcription of a turn failed: {message}")
                elif etype == "error":
                    error = event.get("error") or {}
                    if (
                        error.get("event_id") == final_id
                        and error.get("code") == "input_audio_buffer_commit_empty"
                    ):
                        continue  # the server's VAD had already committed the last turn
                    raise STTError(f"transcription session error: {error.get('message', error)}")
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            with contextlib.suppress(transport.TransportError):
                await conn.close()
            logger.debug("fastvoice voice: transcription session closed after %d turns", turns)

    async def _send_audio(self, conn: transport.Connection, final_id: str) -> None:
        rate = self._input.sample_rate
        resampler = audio.Resampler(rate, REALTIME_RATE) if rate != REALTIME_RATE else None
        async for chunk in self._input.chunks():
            if resampler is None:
                await conn.send_audio(chunk)
            else:
                out = resampler.process(np.frombuffer(chunk, dtype="<i2"))
                if len(out):
                    await conn.send_audio(out)
        if resampler is not None and len(tail := resampler.flush()):
            await conn.send_audio(tail)
        await conn.send_text(json.dumps({"type": "input_audio_buffer.commit", "event_id": final_id}))
        await conn.send_text(json.dumps({"type": "input_audio_buffer.clear"}))

    @staticmethod
    async def _recv(conn: transport.Connection) -> dict[str, Any]:
        try:
            msg = await conn.recv()
        except transport.ConnectionClosed as exc:
            raise STTError(f"the transcription session closed early (code {conn.close_code})") from exc
        if not isinstance(msg, str):
            raise STTError("the transcription session sent a binary frame")
        event = json.loads(msg)
        if not isinstance(event, dict):
            raise STTError("the transcription session sent a non-object event")
        return event

    async def _expect(self, conn: transport.Connection, etype: str) -> None:
        event = await asyncio.wait_for(self._recv(conn), timeout=10.0)
        if event.get("type") == "error":
            error = event.get("error") or {}
            raise OpenAISTTStatusError(
                f"transcription session rejected: {error.get('message', error)}",
                status=400,
                code=error.get("code"),
                error_type=error.get("type"),
            )
        if event.get("type") not in (etype, etype.replace("session.", "transcription_session.")):
            raise STTError(f"transcription session: expected {etype}, got {event.get('type')!r}")


class OpenAITTSModel(TTSModel):
    """`gpt-4o-mini-tts`, `tts-1`...: PCM16 24 kHz (`response_format="pcm"`), each network read
    yielded at once so the first audio leaves before the rest is synthesised."""

    def __init__(self, model: str, client: HTTPClient) -> None:
        self._model = model
        self._client = client

    @property
    def model_name(self) -> str:
        return self._model

    def body(self, text: str, settings: TTSSettings) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "input": text,
            "voice": settings.voice,
            "response_format": "pcm",
        }
        if settings.speed is not None:
            body["speed"] = settings.speed
        if settings.instructions:
            body["instructions"] = settings.instructions
        return body

    async def run(self, text: str, settings: TTSSettings) -> AsyncIterator[bytes]:
        body = self.body(text, settings)
        resp = await self._client.request(
            "/audio/speech",
            "text to speech",
            OpenAITTSStatusError,
            lambda session, url: session.post(url, json=body),
        )
        try:
            async for chunk in resp.content.iter_any():
                if chunk:
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TTSError(f"the text to speech stream broke off: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.release()


class OpenAIVoiceModelProvider(VoiceModelProvider):
    """Hands out OpenAI STT and TTS models sharing one HTTP session.

    `api_key` by fastvoice's precedence (`fastvoice.realtime.auth`), `base_url` else
    `OPENAI_BASE_URL` else `https://api.openai.com/v1`. Close with `aclose()` or `async with`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        turn_detection: dict[str, Any] | None = None,
    ) -> None:
        self._client = HTTPClient(api_key, base_url, retry)
        self._turn_detection = turn_detection

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def get_stt_model(self, name: str | None) -> OpenAISTTModel:
        return OpenAISTTModel(name or STTSettings().model, self._client, self._turn_detection)

    def get_tts_model(self, name: str | None) -> OpenAITTSModel:
        return OpenAITTSModel(name or TTSSettings().model, self._client)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"OpenAIVoiceModelProvider({self._client!r})"
