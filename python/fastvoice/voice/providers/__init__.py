"""The provider interface: how a pipeline reaches speech-to-text and text-to-speech models.

Implement `STTModel`, `TTSModel` and a `VoiceModelProvider` that hands them out by name to
plug in any engine; `fastvoice.voice.providers.local` has the offline ones.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from fastvoice.voice.config import STTSettings, TTSSettings
from fastvoice.voice.events import ProviderUnavailableError

if TYPE_CHECKING:
    from fastvoice.voice.events import STTError
    from fastvoice.voice.input import AudioInput, StreamedAudioInput

logger = logging.getLogger("fastvoice")


class STTModel(abc.ABC):
    """Speech to text for one clip."""

    @property
    @abc.abstractmethod
    def model_name(self) -> str: ...

    @abc.abstractmethod
    async def transcribe(self, audio: AudioInput, settings: STTSettings) -> str:
        """The transcript of `audio` (PCM16 mono at `audio.sample_rate`, see `AudioInput.decode`).

        Returns "" when nothing was recognised; raises on failure. Long CPU work must not
        block the event loop (run it in a thread).
        """

    def create_session(
        self, audio_input: StreamedAudioInput, settings: STTSettings
    ) -> StreamedTranscription | None:
        """A session that detects the turns of `audio_input` itself (e.g. a server-side VAD),
        or `None` (the default) to let the pipeline cut turns and call `transcribe` on each."""
        return None

    def open_turn(
        self,
        sample_rate: int,
        settings: STTSettings,
        on_partial: Callable[[str], Awaitable[None]] | None = None,
    ) -> TurnTranscription | None:
        """A transcription fed while one turn is spoken, or `None` (the default): the pipeline
        transcribes each turn whole once it has ended. `on_partial(text)` is awaited with newly
        recognised text as the turn goes on."""
        return None


class TurnTranscription(Protocol):
    """One turn heard as it is spoken: `feed` PCM16 at the turn's rate, then `finish` (the
    transcript) or `abort`, once."""

    def feed(self, pcm16: bytes) -> None: ...

    async def finish(self) -> str: ...

    async def abort(self) -> None: ...


class StreamedTranscription(abc.ABC):
    """Turns of a live stream, transcribed by the model's own turn detection."""

    @abc.abstractmethod
    def transcripts(self) -> AsyncIterator[str | STTError]:
        """Each turn's final transcript as it completes, until the input closes; a turn that
        failed is yielded as an `STTError` (the session goes on), a dead session raises."""


class TTSModel(abc.ABC):
    """Text to speech, streamed."""

    @property
    @abc.abstractmethod
    def model_name(self) -> str: ...

    @abc.abstractmethod
    def run(self, text: str, settings: TTSSettings) -> AsyncIterator[bytes]:
        """PCM16 little-endian mono 24 kHz audio of `text`, yielded as it is produced."""


class VoiceModelProvider(abc.ABC):
    """Hands out models by name (`None`: the provider's default)."""

    @abc.abstractmethod
    def get_stt_model(self, name: str | None) -> STTModel: ...

    @abc.abstractmethod
    def get_tts_model(self, name: str | None) -> TTSModel: ...


def find_api_key() -> str | None:
    """The OpenAI key by fastvoice's precedence (shared with realtime): `CODEX_API_KEY`, then
    `OPENAI_API_KEY` in `auth.json` under `CODEX_HOME` (default `~/.codex`), then `OPENAI_API_KEY`."""
    from fastvoice.realtime.auth import resolve_api_key

    return resolve_api_key()


def _openai_provider() -> VoiceModelProvider:
    try:
        from fastvoice.voice.providers.openai import OpenAIVoiceModelProvider
    except ImportError as exc:  # aiohttp missing
        raise ProviderUnavailableError(
            f"the OpenAI voice provider needs aiohttp ({exc}); pip install 'fastvoice[openai]'"
        ) from exc
    return OpenAIVoiceModelProvider()


def _local_provider(engines: str) -> VoiceModelProvider:
    from fastvoice.voice.providers.local import LocalVoiceProvider

    return LocalVoiceProvider(engines)


def _offline_default() -> VoiceModelProvider:
    """The neural stack when installed, else the light one (so `pip install 'fastvoice[light]'`
    alone still runs offline)."""
    from fastvoice.voice.providers.local import neural_available

    if neural_available():
        return _local_provider("local")
    logger.info("the neural offline engines are not installed (pip install 'fastvoice[local]'); using light")
    return _local_provider("light")


def resolve_provider(provider: VoiceModelProvider | str | None) -> VoiceModelProvider:
    """`None`: OpenAI when an API key is found, else the offline engines (logged): `"local"` when
    installed, else `"light"`. `"openai"`, `"local"` (Whisper + Piper) or `"light"` (PocketSphinx
    + eSpeak NG): that one; a `VoiceModelProvider`: itself."""
    if isinstance(provider, VoiceModelProvider):
        return provider
    if provider is None:
        if find_api_key() is not None:
            return _openai_provider()
        logger.info("no API key found, using offline providers")
        return _offline_default()
    if provider in ("local", "light"):
        return _local_provider(provider)
    if provider == "openai":
        return _openai_provider()
    raise ValueError(
        f'provider must be "openai", "local", "light", None or a VoiceModelProvider, got {provider!r}'
    )


__all__ = [
    "STTModel",
    "StreamedTranscription",
    "TTSModel",
    "TurnTranscription",
    "VoiceModelProvider",
    "find_api_key",
    "resolve_provider",
]
