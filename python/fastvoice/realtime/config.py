"""Session and run configuration for Realtime agents.

Everything here is a frozen dataclass validated in ``__post_init__``: a typo in a voice name or an
out-of-range speed fails when the config is built, with a message naming the field, instead of as an ``error``
event from the server seconds later. The GA wire shape is produced by :mod:`fastvoice.realtime._protocol`;
this module only holds validated values (plus the small format table the session needs to turn bytes into
milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "AUDIO_FORMATS",
    "DEFAULT_MODEL",
    "VOICES",
    "AudioFormatInfo",
    "InputAudioTranscription",
    "Prompt",
    "ReconnectConfig",
    "RunConfig",
    "SessionModelSettings",
    "TracingConfig",
    "TurnDetectionConfig",
    "audio_format_info",
]

DEFAULT_MODEL = "gpt-realtime"
"""Model used when neither the agent nor the settings name one."""

VOICES: tuple[str, ...] = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
"""The built-in Realtime voices accepted by :class:`SessionModelSettings`."""

GAAudioFormat: TypeAlias = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]


@dataclass(frozen=True, slots=True)
class AudioFormatInfo:
    """What the session needs to know about a wire audio format to convert bytes ↔ milliseconds."""

    ga_type: GAAudioFormat
    """The GA ``format.type`` string."""
    sample_rate: int
    """Samples per second on the wire."""
    bytes_per_sample: int
    """2 for PCM16, 1 for G.711 (one byte per 8-bit companded sample)."""

    def to_wire(self) -> dict[str, Any]:
        """The GA ``format`` object (``{"type": "audio/pcm", "rate": 24000}`` for PCM)."""
        if self.ga_type == "audio/pcm":
            return {"type": "audio/pcm", "rate": self.sample_rate}
        return {"type": self.ga_type}

    def duration_ms(self, n_bytes: int) -> float:
        """Duration in milliseconds of ``n_bytes`` of audio in this format."""
        return n_bytes * 1000.0 / (self.sample_rate * self.bytes_per_sample)


AUDIO_FORMATS: dict[GAAudioFormat, AudioFormatInfo] = {
    "audio/pcm": AudioFormatInfo("audio/pcm", 24000, 2),
    "audio/pcmu": AudioFormatInfo("audio/pcmu", 8000, 1),
    "audio/pcma": AudioFormatInfo("audio/pcma", 8000, 1),
}

# Beta names (what openai-agents and older code pass) and GA names both map onto the GA type.
_FORMAT_ALIASES: dict[str, GAAudioFormat] = {
    "pcm16": "audio/pcm",
    "pcm": "audio/pcm",
    "audio/pcm": "audio/pcm",
    "g711_ulaw": "audio/pcmu",
    "pcmu": "audio/pcmu",
    "audio/pcmu": "audio/pcmu",
    "g711_alaw": "audio/pcma",
    "pcma": "audio/pcma",
    "audio/pcma": "audio/pcma",
}


def _normalize_format(value: object, field_name: str) -> GAAudioFormat:
    if isinstance(value, AudioFormatInfo):
        return value.ga_type
    if isinstance(value, str):
        name = value
    elif isinstance(value, Mapping):
        given = value.get("type")
        rate = value.get("rate")
        if not isinstance(given, str):
            raise ValueError(f"{field_name}: a format dict needs a string 'type', got {dict(value)!r}")
        name = given
        if _FORMAT_ALIASES.get(name) == "audio/pcm" and rate not in (None, 24000):
            raise ValueError(f"{field_name}: the Realtime API only accepts PCM at rate 24000, got {rate!r}")
        unknown = set(value) - {"type", "rate"}
        if unknown:
            raise ValueError(f"{field_name}: unknown format keys {sorted(unknown)}")
    else:
        raise ValueError(f"{field_name}: expected a format name or dict, got {type(value).__name__}")
    try:
        return _FORMAT_ALIASES[name]
    except KeyError:
        known = "pcm16, g711_ulaw, g711_alaw, audio/pcm, audio/pcmu, audio/pcma"
        raise ValueError(f"{field_name}: unknown audio format {name!r} (known: {known})") from None


def audio_format_info(value: str | Mapping[str, Any] | AudioFormatInfo) -> AudioFormatInfo:
    """Look up a format given as a beta name (``"pcm16"``), GA name or GA dict."""
    return AUDIO_FORMATS[_normalize_format(value, "format")]


def _check_choice(field_name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{field_name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _check_range(field_name: str, value: float | None, lo: float, hi: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field_name} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{field_name} must be within [{lo}, {hi}], got {value!r}")


def _check_non_negative_int(field_name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field_name} must be a non-negative int, got {value!r}")


@dataclass(frozen=True, slots=True)
class TurnDetectionConfig:
    """Voice activity detection on the server (``audio.input.turn_detection``).

    ``semantic_vad`` decides end-of-turn from what was said (``eagerness``); ``server_vad`` from silence
    (``threshold``, ``prefix_padding_ms``, ``silence_duration_ms``, ``idle_timeout_ms``). Fields that do not
    apply to the chosen type are rejected rather than silently dropped. ``None`` fields are left to the server
    default.
    """

    type: Literal["semantic_vad", "server_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None

    def __post_init__(self) -> None:
        _check_choice("turn_detection.type", self.type, ("semantic_vad", "server_vad"))
        if self.eagerness is not None:
            _check_choice("turn_detection.eagerness", self.eagerness, ("low", "medium", "high", "auto"))
        _check_range("turn_detection.threshold", self.threshold, 0.0, 1.0)
        _check_non_negative_int("turn_detection.prefix_padding_ms", self.prefix_padding_ms)
        _check_non_negative_int("turn_detection.silence_duration_ms", self.silence_duration_ms)
        _check_non_negative_int("turn_detection.idle_timeout_ms", self.idle_timeout_ms)
        for name in ("create_response", "interrupt_response"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise ValueError(f"turn_detection.{name} must be a bool, got {v!r}")
        if self.type == "semantic_vad":
            server_only = ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms")
            bad = [n for n in server_only if getattr(self, n) is not None]
            if bad:
                raise ValueError(f"turn_detection: {', '.join(bad)} only apply to type='server_vad'")
        elif self.eagerness is not None:
            raise ValueError("turn_detection: eagerness only applies to type='semantic_vad'")

    def to_wire(self) -> dict[str, Any]:
        """The GA ``turn_detection`` object, with unset fields omitted."""
        out: dict[str, Any] = {"type": self.type}
        for name in (
            "eagerness",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "idle_timeout_ms",
            "create_response",
            "interrupt_response",
        ):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        return out


@dataclass(frozen=True, slots=True)
class InputAudioTranscription:
    """Transcription of the user's audio (``audio.input.transcription``); drives user transcript events."""

    model: str = "gpt-4o-mini-transcribe"
    language: str | None = None
    prompt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"input_audio_transcription.model must be a non-empty str, got {self.model!r}")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model}
        if self.language is not None:
            out["language"] = self.language
        if self.prompt is not None:
            out["prompt"] = self.prompt
        return out


@dataclass(frozen=True, slots=True)
class Prompt:
    """A stored prompt template reference (``session.prompt``)."""

    id: str
    version: str | None = None
    variables: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("prompt.id must be a non-empty str")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.version is not None:
            out["version"] = self.version
        if self.variables is not None:
            out["variables"] = dict(self.variables)
        return out


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Server-side tracing (``session.tracing``); ``RunConfig(tracing="auto")`` uses the server defaults."""

    workflow_name: str | None = None
    group_id: str | None = None
    metadata: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.workflow_name is not None:
            out["workflow_name"] = self.workflow_name
        if self.group_id is not None:
            out["group_id"] = self.group_id
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


_NOISE_REDUCTION = ("near_field", "far_field")
_TOOL_CHOICE_MODES = ("auto", "none", "required")
_DEFAULT_TURN_DETECTION = TurnDetectionConfig(type="semantic_vad", interrupt_response=True)
_DEFAULT_TRANSCRIPTION = InputAudioTranscription()


@dataclass(frozen=True, slots=True)
class SessionModelSettings:
    """Model-side settings sent in ``session.update``.

    Defaults match what openai-agents-python sends (voice ``ash``, audio output, PCM16 at 24 kHz both ways,
    ``gpt-4o-mini-transcribe`` input transcription, semantic VAD with ``interrupt_response``) except the
    model, which is ``gpt-realtime``. ``None`` means "omit, keep the server default"; the exception is
    ``turn_detection=None``, which is sent as ``null`` and switches VAD off (push-to-talk: the app commits).

    Formats accept the beta names (``"pcm16"``, ``"g711_ulaw"``, ``"g711_alaw"``), GA names
    (``"audio/pcm"``...) or GA dicts, and are stored as the GA type string. ``modalities`` is the beta
    spelling of ``output_modalities``; ``["text", "audio"]`` means audio plus its transcript, which is GA
    ``["audio"]``.
    """

    model: str | None = None
    voice: str = "ash"
    modalities: Sequence[Literal["text", "audio"]] | None = None
    output_modalities: Sequence[Literal["text", "audio"]] | None = None
    input_audio_format: str | Mapping[str, Any] = "pcm16"
    output_audio_format: str | Mapping[str, Any] = "pcm16"
    input_audio_transcription: InputAudioTranscription | None = _DEFAULT_TRANSCRIPTION
    input_audio_noise_reduction: Literal["near_field", "far_field"] | None = None
    turn_detection: TurnDetectionConfig | None = _DEFAULT_TURN_DETECTION
    speed: float | None = None
    tool_choice: str | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    prompt: Prompt | None = None

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ValueError(f"model must be a non-empty str, got {self.model!r}")
        _check_choice("voice", self.voice, VOICES)
        object.__setattr__(
            self, "input_audio_format", _normalize_format(self.input_audio_format, "input_audio_format")
        )
        object.__setattr__(
            self, "output_audio_format", _normalize_format(self.output_audio_format, "output_audio_format")
        )
        for name in ("modalities", "output_modalities"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty list of 'text'/'audio', got {value!r}")
            for m in value:
                _check_choice(name, m, ("text", "audio"))
            object.__setattr__(self, name, tuple(value))
        if self.output_modalities is not None and len(set(self.output_modalities)) > 1:
            raise ValueError(
                "output_modalities: the GA API answers in either ['audio'] or ['text'], not both"
            )
        if self.input_audio_transcription is not None and not isinstance(
            self.input_audio_transcription, InputAudioTranscription
        ):
            raise ValueError("input_audio_transcription must be an InputAudioTranscription or None")
        if self.input_audio_noise_reduction is not None:
            _check_choice("input_audio_noise_reduction", self.input_audio_noise_reduction, _NOISE_REDUCTION)
        if self.turn_detection is not None and not isinstance(self.turn_detection, TurnDetectionConfig):
            raise ValueError("turn_detection must be a TurnDetectionConfig or None")
        _check_range("speed", self.speed, 0.25, 1.5)
        if self.tool_choice is not None and (not isinstance(self.tool_choice, str) or not self.tool_choice):
            raise ValueError(
                f"tool_choice must be auto/none/required or a function name, got {self.tool_choice!r}"
            )
        mot = self.max_output_tokens
        if (
            mot is not None
            and mot != "inf"
            and (isinstance(mot, bool) or not isinstance(mot, int) or not 1 <= mot <= 4096)
        ):
            raise ValueError(f"max_output_tokens must be an int in [1, 4096] or 'inf', got {mot!r}")
        if self.prompt is not None and not isinstance(self.prompt, Prompt):
            raise ValueError("prompt must be a fastvoice.realtime.Prompt")

    @property
    def effective_output_modalities(self) -> tuple[Literal["text", "audio"], ...]:
        """The GA ``output_modalities`` to send: explicit, else derived from ``modalities``, else audio."""
        if self.output_modalities is not None:
            return tuple(self.output_modalities)
        if self.modalities is not None:
            return ("audio",) if "audio" in self.modalities else ("text",)
        return ("audio",)

    @property
    def input_format(self) -> AudioFormatInfo:
        return audio_format_info(self.input_audio_format)

    @property
    def output_format(self) -> AudioFormatInfo:
        return audio_format_info(self.output_audio_format)

    def tool_choice_wire(self) -> str | dict[str, str] | None:
        """``tool_choice`` as sent: a mode string, or ``{"type": "function", "name": ...}`` for a tool
        name."""
        if self.tool_choice is None:
            return None
        if self.tool_choice in _TOOL_CHOICE_MODES:
            return self.tool_choice
        return {"type": "function", "name": self.tool_choice}


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """How a session survives the WebSocket dying: attempts, exponential backoff, and the outage audio
    buffer."""

    enabled: bool = True
    max_attempts: int = 3
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    multiplier: float = 2.0
    max_buffered_audio_bytes: int = 24000 * 2 * 10
    """Input audio kept for a reconnect (default 10 s of 24 kHz PCM16): what the server has not committed yet
    plus what is sent while disconnected, re-sent to the new server session. Older audio beyond it is dropped
    and, if a reconnect needed it, counted exactly in ``session.dropped_audio_bytes``. The native
    ``stream_audio_from`` pump keeps up to the same amount of its own."""

    def __post_init__(self) -> None:
        _check_non_negative_int("reconnect.max_attempts", self.max_attempts)
        _check_range("reconnect.initial_delay_s", self.initial_delay_s, 0.0, 3600.0)
        _check_range("reconnect.max_delay_s", self.max_delay_s, 0.0, 3600.0)
        _check_range("reconnect.multiplier", self.multiplier, 1.0, 100.0)
        _check_non_negative_int("reconnect.max_buffered_audio_bytes", self.max_buffered_audio_bytes)

    def delays(self) -> list[float]:
        """The wait before each attempt: ``initial * multiplier**i``, capped at ``max_delay_s``."""
        if not self.enabled:
            return []
        return [
            min(self.initial_delay_s * self.multiplier**i, self.max_delay_s) for i in range(self.max_attempts)
        ]


ToolErrorFormatter: TypeAlias = Callable[[str, BaseException], str]
"""``(tool_name, error) -> text`` sent to the model as the tool output when a tool raises."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything about a run that is not the agent: model settings, tracing, guardrails, reconnection."""

    model_settings: SessionModelSettings = field(default_factory=SessionModelSettings)
    tracing: Literal["auto"] | TracingConfig | None = None
    """Server-side tracing; ``None`` (default) leaves it off. It cannot be changed once enabled."""
    output_guardrails: Sequence[Any] = ()
    """Extra :class:`~fastvoice.realtime.agent.OutputGuardrail` run on every agent's transcript."""
    guardrail_debounce_chars: int = 100
    """Run output guardrails each time this many transcript characters have accumulated."""
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    async_tool_calls: bool = True
    """Run function tools in their own tasks so the session keeps handling events."""
    tool_error_formatter: ToolErrorFormatter | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model_settings, SessionModelSettings):
            raise ValueError("model_settings must be a SessionModelSettings")
        if (
            self.tracing is not None
            and self.tracing != "auto"
            and not isinstance(self.tracing, TracingConfig)
        ):
            raise ValueError(f"tracing must be None, 'auto' or a TracingConfig, got {self.tracing!r}")
        object.__setattr__(self, "output_guardrails", tuple(self.output_guardrails))
        if isinstance(self.guardrail_debounce_chars, bool) or not isinstance(
            self.guardrail_debounce_chars, int
        ):
            raise ValueError("guardrail_debounce_chars must be an int")
        if self.guardrail_debounce_chars < 1:
            raise ValueError("guardrail_debounce_chars must be >= 1")
        if not isinstance(self.reconnect, ReconnectConfig):
            raise ValueError("reconnect must be a ReconnectConfig")
