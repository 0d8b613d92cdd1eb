"""Events a `StreamedAudioResult` yields, and the errors the pipeline reports through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

LifecycleEvent = Literal["turn_started", "turn_ended", "session_ended"]


@dataclass(frozen=True, slots=True)
class VoiceStreamEventAudio:
    """A piece of synthesised speech: PCM16 mono 24 kHz `bytes`, or a numpy array when
    `TTSSettings.dtype` asks for one. Emitted as soon as the TTS model produced it."""

    data: Any


@dataclass(frozen=True, slots=True)
class VoiceStreamEventLifecycle:
    """`turn_started` / `turn_ended` bracket each spoken turn (also a failed one, so they stay
    paired); `session_ended` comes exactly once, last, also after an error."""

    event: LifecycleEvent


@dataclass(frozen=True, slots=True)
class VoiceStreamEventError:
    """A turn failed; the session goes on (streamed input) or ends (single turn)."""

    error: BaseException


VoiceStreamEvent = VoiceStreamEventAudio | VoiceStreamEventLifecycle | VoiceStreamEventError


class VoiceError(Exception):
    """Base class of the errors the voice pipeline and its providers raise."""


class NoSpeechError(VoiceError):
    """The input had no speech to transcribe: it was empty, silent, or nothing was recognised."""


class STTError(VoiceError):
    """The speech-to-text model failed."""


class TTSError(VoiceError):
    """The text-to-speech model failed."""


class ProviderUnavailableError(VoiceError, NotImplementedError):
    """The requested provider cannot be used in this build or environment."""
