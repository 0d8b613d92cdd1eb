"""A session's turn transcriptions: each committed turn is decoded at once (several in parallel when turns
pile up, since decodes run outside the GIL), and reported in the order the turns were said, so a client
that reads transcripts as a stream of turns (openai-agents' ``transcribe_turns``) never sees a short turn
overtake a long one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastvoice.serve.engines import Utterance
from fastvoice.voice._vad import has_speech

if TYPE_CHECKING:
    from fastvoice.serve.session import Session

__all__ = ["TurnTranscripts"]

logger = logging.getLogger("fastvoice.serve")

COMPLETED = "conversation.item.input_audio_transcription.completed"


class TurnTranscripts:
    """The pending transcriptions of one session's turns (true while any is pending)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def start(self, item: dict[str, Any], pcm: bytes, rate: int, utt: Utterance | None) -> None:
        """Transcribe the committed user ``item`` (its audio ``pcm`` at ``rate``; ``utt``: the streamed
        decode of it, if one ran) and fill in its transcript."""
        before = next(reversed(self._tasks.values()), None)
        task = asyncio.get_running_loop().create_task(self._run(item, pcm, rate, utt, before))
        item_id = item["id"]
        self._tasks[item_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(item_id, None))

    async def wait(self) -> None:
        """Let pending transcriptions finish (a response needs the words it answers)."""
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(
        self,
        item: dict[str, Any],
        pcm: bytes,
        rate: int,
        utt: Utterance | None,
        before: asyncio.Task[None] | None,
    ) -> None:
        try:
            text = await self._transcribe(pcm, rate, utt)
            if before is not None:  # report after the turn said before this one
                await asyncio.wait([before])
            await self._report(item, pcm, rate, utt, text)
        except Exception as exc:  # a dead socket or our own bug: never an unretrieved task exception
            logger.exception("transcription of %s failed", item["id"])
            self._session.options.on_error(exc)

    async def _transcribe(self, pcm: bytes, rate: int, utt: Utterance | None) -> str | Exception:
        """The transcript, or the exception the STT raised on this clip (the service reports it and the
        session goes on)."""
        try:
            if not has_speech(pcm, rate):  # recognisers hallucinate words in silence
                if utt is not None:
                    await utt.abort()
                return ""
            if utt is None:
                return await self._session.engines.transcribe(pcm, rate)
            return await utt.finish()
        except Exception as exc:
            return exc

    async def _report(
        self, item: dict[str, Any], pcm: bytes, rate: int, utt: Utterance | None, text: str | Exception
    ) -> None:
        s = self._session
        base = {"item_id": item["id"], "content_index": 0}
        if isinstance(text, Exception):
            logger.warning("transcription failed: %s", text)
            await s.emit(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    **base,
                    "error": {"type": "transcription_error", "code": "stt_failed", "message": str(text)},
                }
            )
            return
        item["content"][0]["transcript"] = text
        if not ((s.session.get("audio") or {}).get("input") or {}).get("transcription"):
            return  # the service only reports transcripts when input transcription is on
        if text and not (utt is not None and utt.sends_deltas):  # else the deltas went out as it was heard
            await s.emit({"type": "conversation.item.input_audio_transcription.delta", **base, "delta": text})
        seconds = len(pcm) / 2 / rate
        await s.emit(
            {
                "type": COMPLETED,
                **base,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(seconds, 3)},
            }
        )
