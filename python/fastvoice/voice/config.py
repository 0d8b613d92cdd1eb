"""Pipeline settings. Every field has a default so `Config()` works as it is.

The model and voice names are OpenAI's; the offline providers map them onto their own
engines (see `fastvoice.voice.providers.local`), so one `Config` drives either provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastvoice.voice.events import UnknownVoiceError

#: Output sample rate of every TTS model: PCM16 mono at 24 kHz, as OpenAI's `pcm` format.
TTS_SAMPLE_RATE = 24000

#: The voices of OpenAI's `/audio/speech` (`openai.types.audio.SpeechCreateParams.voice`); the
#: offline TTS speaks every one of them with an eSpeak NG voice of its own.
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)

# An eSpeak NG voice name, the offline provider's escape hatch: a language code, optional
# region/dialect parts, optional "+variant" ("en", "en-us", "en-gb-x-rp+m7", "fr+Mr serious").
_ESPEAK_VOICE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[A-Za-z0-9_][A-Za-z0-9_ ]*)?", re.IGNORECASE)


#: A custom OpenAI voice, given as `{"id": "voice_1234"}` (`SpeechCreateParams.voice`'s `VoiceID`).
CustomVoice = Mapping[str, str]


def check_voice(voice: object) -> str | CustomVoice:
    """`voice` if it is an OpenAI voice name, a custom OpenAI voice (`{"id": "voice_..."}`) or an
    eSpeak NG voice name, else `UnknownVoiceError`."""
    if isinstance(voice, str) and (voice in VOICES or _ESPEAK_VOICE.fullmatch(voice)):
        return voice
    if isinstance(voice, Mapping) and set(voice) == {"id"} and isinstance(voice["id"], str) and voice["id"]:
        return voice
    raise UnknownVoiceError(voice, VOICES)


@dataclass(slots=True)
class STTSettings:
    """Speech-to-text settings: the model name and hints that providers may use."""

    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None


@dataclass(slots=True)
class TTSSettings:
    """Text-to-speech settings.

    `dtype` chooses the type of `VoiceStreamEventAudio.data`: `None` (the default) gives
    PCM16 little-endian `bytes`; `"int16"` or `"float32"` (or the numpy dtypes) give numpy
    arrays, float32 scaled by 1/32768. The audio is always mono at 24 kHz.

    `voice` is one of OpenAI's voice names (`VOICES`; every one also speaks offline), or, for
    the offline TTS only, an eSpeak NG voice such as `"en-us+f2"`, or, for OpenAI only, a custom
    voice `{"id": "voice_1234"}`. Anything else raises
    `UnknownVoiceError` (a `TTSError` and `ValueError`) naming the valid voices.
    """

    model: str = "gpt-4o-mini-tts"
    voice: str | CustomVoice = "nova"
    speed: float | None = None
    instructions: str | None = None
    dtype: Any = None

    def __post_init__(self) -> None:
        check_voice(self.voice)


@dataclass(slots=True)
class TurnDetection:
    """Turn detection for `Pipeline.run_streamed` (when the STT model does not detect turns itself).

    `engine` picks the detector: `"silero"`, the Silero VAD neural network (v6, shipped with
    fastvoice) on onnxruntime; `"energy"`, the native VAD (`fastvoice.audio.VAD`); `"auto"` (the
    default), Silero when onnxruntime is installed, else the energy VAD. `"silero"` without
    onnxruntime raises `ProviderUnavailableError` (`pip install 'fastvoice[local]'`).

    A turn starts once `min_speech_ms` of audio is speech and ends after `silence_ms` of non-speech;
    `prefix_ms` of audio before the start is kept so the first phoneme is not clipped. Speech is,
    for Silero, a window whose speech probability is at least `threshold` (0-1, the scale of the
    Realtime API's `server_vad` threshold; it ends below `threshold - 0.15`), and for the energy
    VAD a frame louder than `threshold_db` dBFS and than the adaptive noise floor and not
    noise-like, in frames of `frame_ms` (10, 20 or 30). Each engine ignores the other's fields.
    """

    threshold_db: float = -40.0
    min_speech_ms: int = 100
    silence_ms: int = 700
    prefix_ms: int = 200
    frame_ms: int = 20
    threshold: float = 0.5
    engine: Literal["auto", "silero", "energy"] = "auto"


@dataclass(slots=True)
class Config:
    """Everything a `Pipeline` needs besides the workflow and the provider.

    `tts_concurrency` bounds how many sentences are synthesised ahead of the one playing:
    sentence n+1 may be synthesised while n streams out, but no more than this many at once.

    `max_buffered_audio_s` bounds the read-ahead: how many seconds of synthesised audio may wait
    for the result's consumer. While that much is waiting, the TTS streams are not pulled
    further (and the workflow's text is not read further), so a slow or real-time consumer
    holds a few seconds of audio in memory however long the reply; nothing is dropped.

    `partial_transcripts`: with streamed input and an STT model that hears turns as they are
    spoken (the offline Whisper), also yield `VoiceStreamEventTranscript` events (off by default,
    so consumers that only know the other events are unaffected).
    """

    workflow_name: str = "fastvoice"
    stt_settings: STTSettings = field(default_factory=STTSettings)
    tts_settings: TTSSettings = field(default_factory=TTSSettings)
    turn_detection: TurnDetection = field(default_factory=TurnDetection)
    tts_concurrency: int = 2
    max_buffered_audio_s: float = 5.0
    partial_transcripts: bool = False
