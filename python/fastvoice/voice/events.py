"""Events a `StreamedAudioResult` yields, and the errors the pipeline reports through them.

Each event also has openai-agents' `type` string, so consumers written for its `VoicePipeline`
(`event.type == "voice_stream_event_audio"`) work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

LifecycleEvent = Literal["turn_started", "turn_ended", "session_ended"]


@dataclass(frozen=True, slots=True)
class VoiceStreamEventAudio:
    """A piece of synthesised speech: PCM16 mono 24 kHz `bytes`, or a numpy array when
    `TTSSettings.dtype` asks for one. Emitted as soon as the TTS model produced it."""

    data: Any
    type: ClassVar[str] = "voice_stream_event_audio"


@dataclass(frozen=True, slots=True)
class VoiceStreamEventLifecycle:
    """`turn_started` / `turn_ended` bracket each spoken turn (also a failed one, so they stay
    paired); `session_ended` comes exactly once, last, also after an error."""

    event: LifecycleEvent
    type: ClassVar[str] = "voice_stream_event_lifecycle"


@dataclass(frozen=True, slots=True)
class VoiceStreamEventError:
    """A turn failed; the session goes on (streamed input) or ends (single turn)."""

    error: BaseException
    type: ClassVar[str] = "voice_stream_event_error"


@dataclass(frozen=True, slots=True)
class VoiceStreamEventTranscript:
    """What the user is saying, while streamed input is heard (only with
    `Config(partial_transcripts=True)`, and only from a model that streams, e.g. the offline
    Whisper). `text` is newly recognised text to append to the turn's so far; the turn's last one
    has `is_final` and the whole transcript in `text`, just before its `turn_started`."""

    text: str
    is_final: bool
    type: ClassVar[str] = "voice_stream_event_transcript"


VoiceStreamEvent = (
    VoiceStreamEventAudio | VoiceStreamEventLifecycle | VoiceStreamEventError | VoiceStreamEventTranscript
)


class VoiceError(Exception):
    """Base class of the errors the voice pipeline and its providers raise."""


class NoSpeechError(VoiceError):
    """The input had no speech to transcribe: it was empty, silent, or nothing was recognised."""


class STTError(VoiceError):
    """The speech-to-text model failed."""


class TTSError(VoiceError):
    """The text-to-speech model failed."""


class UnknownVoiceError(TTSError, ValueError):
    """`TTSSettings(voice=...)` named no known voice. `voice` is the rejected name, `valid` the
    OpenAI voice names (an eSpeak NG voice such as "en-us+f2" is accepted for the offline TTS)."""

    def __init__(self, voice: object, valid: tuple[str, ...]) -> None:
        super().__init__(
            f"unknown voice {voice!r}: use one of {', '.join(valid)}, "
            "or an eSpeak NG voice for the offline TTS (a language code with an optional variant,"
            ' e.g. "en-us+f2")'
        )
        self.voice = voice
        self.valid = valid


class ProviderUnavailableError(VoiceError, NotImplementedError):
    """The requested provider cannot be used in this build or environment."""
