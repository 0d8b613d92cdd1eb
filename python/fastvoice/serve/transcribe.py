"""Realtime transcription sessions (``session.type = "transcription"``): audio in, transcripts out.

A client connects with ``?intent=transcription`` (or turns a realtime session into one with ``session.update
{"session": {"type": "transcription", ...}}`` before its first response) and gets the input side of a
realtime session unchanged: the three audio formats, ``server_vad`` / ``semantic_vad`` turns or manual
commits (``turn_detection: null``), and each turn transcribed while it is spoken when the engine can. A
committed turn is announced (``input_audio_buffer.committed``, ``conversation.item.added`` / ``.done`` for
its user item) and transcribed (``...input_audio_transcription.delta`` then ``.completed``, or ``.failed``).
There is no brain and no voice: events that would make the model speak or edit a conversation get an
``error`` event.

``audio.input.transcription`` takes any ``model`` name (offline, every model is the server's engine);
``language``, ``prompt``, ``noise_reduction`` and ``include`` are accepted and echoed, but the engines are
English-only, take no prompt, do no noise reduction and produce no logprobs.

Beta names: clients written for the beta API send ``transcription_session.update`` with its flat fields
(``input_audio_format``, ``input_audio_transcription``, ...). It is applied as the GA update it means and
answered with ``transcription_session.updated`` in the beta shape (validated against
``openai.types.beta.realtime`` in strict mode). Everything else goes out under GA names, ``session.created``
included: a client cannot have said which it speaks before the first event, and the GA union has no
``transcription_session.created``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pydantic
from aiohttp import web

from fastvoice.serve.audio import format_of
from fastvoice.serve.brain import Brain
from fastvoice.serve.checks import check_session_update
from fastvoice.serve.engines import Engines
from fastvoice.serve.events import ClientEventError, _as_client_error, check_client_event
from fastvoice.serve.session import Session, SessionOptions
from fastvoice.testing._state import merge
from fastvoice.testing.validation import EventValidationError, _validate

__all__ = ["TranscriptionSession", "become_transcription", "default_transcription_session"]

BETA_UPDATE = "transcription_session.update"
BETA_UPDATED = "transcription_session.updated"
#: Client events that ask for a response or edit the conversation a response would read.
NOT_TRANSCRIPTION = frozenset(
    {
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "conversation.item.truncate",
        "output_audio_buffer.clear",
    }
)
#: Beta ``input_audio_format`` names of the GA formats.
BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
BETA_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "whisper-1")  # what the beta types allow
TURN_FIELDS = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")  # the beta session's
Models = dict[str, type[pydantic.BaseModel]]  # event type -> its pydantic model


def default_transcription_session() -> dict[str, Any]:
    """A new transcription session as ``session.created`` shows it (GA
    ``RealtimeTranscriptionSessionCreateRequest``): transcription on, server VAD with 500 ms of silence."""
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": None, "prompt": ""},
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        },
        "include": None,
    }


class TranscriptionSession(Session):
    """A served transcription session: :class:`Session`'s input side, no responses."""

    responds = False

    def __init__(
        self, ws: web.WebSocketResponse, engines: Engines, brain: Brain, model: str, options: SessionOptions
    ) -> None:
        super().__init__(ws, engines, brain, model, options)
        self.session = default_transcription_session()  # no model: a transcription session names none
        self._configure_input()

    def check_event(self, data: Any) -> dict[str, Any]:
        etype = data.get("type") if isinstance(data, dict) else None
        beta = _beta_models()
        if etype == BETA_UPDATE and beta is not None:
            return _check_beta_update(data, beta[0])
        if etype in NOT_TRANSCRIPTION:
            raise ClientEventError(
                "invalid_value",
                f"'{etype}' is not supported in a transcription session: it transcribes input audio and "
                "never responds. Connect without ?intent=transcription for a realtime session.",
                "type",
                data.get("event_id"),
            )
        return check_client_event(data)

    def check_sent(self, event: dict[str, Any]) -> None:
        beta = _beta_models()
        if event["type"] == BETA_UPDATED and beta is not None:
            _validate(event, beta[1], "server", True)
        else:
            super().check_sent(event)

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        update, eid = event["session"], event.get("event_id")
        if update.get("type") != "transcription":
            raise ClientEventError(
                "invalid_value",
                "This is a transcription session: 'session.type' must be 'transcription'. A transcription "
                "session cannot become a realtime session; open a new connection for one.",
                "session.type",
                eid,
            )
        await self._apply(update, eid)
        await self.emit({"type": "session.updated", "session": copy.deepcopy(self.session)})

    async def _on_transcription_session_update(self, event: dict[str, Any]) -> None:
        eid = event.get("event_id")
        update = _from_beta(event["session"])
        check_client_event({"type": "session.update", "session": update, "event_id": eid})  # GA-valid too
        await self._apply(update, eid)
        await self.emit({"type": BETA_UPDATED, "session": _to_beta(self.session)})

    async def _apply(self, update: dict[str, Any], eid: str | None) -> None:
        # Ranges the schema does not encode, refused before anything changes.
        check_session_update(update, eid)
        merge(self.session, update)
        await self._drop_utterance()
        self._configure_input()


async def become_transcription(session: Session, event: dict[str, Any]) -> None:
    """Turn the realtime ``session`` into a transcription session for ``session.update`` ``event`` (its
    ``session.type`` is "transcription"), keeping the connection and its input buffer; refused once the
    session has had a response."""
    eid = event.get("event_id")
    if session.responder.started:
        raise ClientEventError(
            "invalid_value",
            "A realtime session can become a transcription session only before its first response; open "
            "a new connection with ?intent=transcription instead.",
            "session.type",
            eid,
        )
    check_session_update(event["session"], eid)  # a refused update leaves the realtime session as it was
    # Same object, new behaviour: the socket, lock, buffer and timers carry over and the server's bookkeeping
    # (its set of sessions) still holds the right object, which a successor object would not.
    session.__class__ = TranscriptionSession
    session.session = default_transcription_session()
    await session._on_session_update(event)


@functools.cache
def _beta_models() -> tuple[Models, Models] | None:
    """The beta types (client update, server reply), or None once the ``openai`` package has dropped them:
    the beta name is then an unknown event type like any other."""
    try:
        from openai.types.beta.realtime import TranscriptionSessionUpdate, TranscriptionSessionUpdatedEvent
    except ImportError:
        return None
    return {BETA_UPDATE: TranscriptionSessionUpdate}, {BETA_UPDATED: TranscriptionSessionUpdatedEvent}


def _check_beta_update(data: dict[str, Any], models: Models) -> dict[str, Any]:
    try:
        _validate(data, models, "client", True)
    except EventValidationError as exc:
        raise _as_client_error(exc.problem, data.get("event_id")) from None
    return data


def _from_beta(beta: dict[str, Any]) -> dict[str, Any]:
    """The GA session update a beta ``transcription_session.update``'s ``session`` means."""
    audio: dict[str, Any] = {}
    # A null format means "unchanged"; the other nulls below turn a feature off.
    if beta.get("input_audio_format") is not None:
        kind = BETA_FORMATS[beta["input_audio_format"]]
        audio["format"] = {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}
    if "input_audio_transcription" in beta:
        audio["transcription"] = beta["input_audio_transcription"]
    if "input_audio_noise_reduction" in beta:
        audio["noise_reduction"] = beta["input_audio_noise_reduction"]
    if "turn_detection" in beta:
        td = beta["turn_detection"]
        fields = {k: v for k, v in (td or {}).items() if v is not None}
        audio["turn_detection"] = {"type": "server_vad", **fields} if td is not None else None
    update: dict[str, Any] = {"type": "transcription"}
    if audio:
        update["audio"] = {"input": audio}
    if beta.get("include") is not None:
        update["include"] = beta["include"]
    return update  # modalities and client_secret have no offline meaning


def _to_beta(session: dict[str, Any]) -> dict[str, Any]:
    """The beta ``TranscriptionSession`` object for a GA transcription ``session``."""
    audio_in = session["audio"]["input"]
    transcription = audio_in.get("transcription")
    beta_tr: dict[str, Any] | None = None
    if transcription:
        beta_tr = {k: transcription[k] for k in ("language", "prompt") if transcription.get(k) is not None}
        if transcription.get("model") in BETA_MODELS:
            beta_tr["model"] = transcription["model"]
    td = audio_in.get("turn_detection")
    formats = {ga: beta for beta, ga in BETA_FORMATS.items()}
    return {
        "client_secret": {"value": "", "expires_at": 0},  # the beta shape requires one; offline has no keys
        "input_audio_format": formats[format_of(session, "input")],
        "input_audio_transcription": beta_tr,
        "modalities": ["text"],
        "turn_detection": {k: td[k] for k in TURN_FIELDS if k in td} if td else None,
    }
