"""Surviving a dead WebSocket: tell subscribers, reconnect with backoff, restore the conversation.

A fresh connection is a fresh server session, so after reconnecting the client re-sends the current agent's
full ``session.update``, replays the conversation's text history (``conversation.item.create`` with the
original item ids, so the history does not fork), then sends again, in their original order, every client
message the old server had not acknowledged and the input audio it had not committed, followed by what the
application submitted during the outage (see :mod:`~fastvoice.realtime._inflight`; the audio is bounded by
``ReconnectConfig.max_buffered_audio_bytes``, and what did not fit is counted exactly in
``session.dropped_audio_bytes``). A message that cannot be meaningfully re-sent (a ``response.cancel``, a
``conversation.item.truncate``...) is reported as a ``RealtimeMessageLostEvent`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from fastvoice import telemetry, transport
from fastvoice.realtime import _protocol as P
from fastvoice.realtime import events as ev

if TYPE_CHECKING:
    from fastvoice.realtime.session import Session

__all__ = ["recover"]

logger = logging.getLogger("fastvoice")


def _replay(session: Session) -> list[dict[str, Any]]:
    items = session._history.items()
    frames = P.history_replay_events(items)
    # history_replay_events skips items without text; match the survivors to their ids in order.
    kept = [it for it in items if P.history_replay_events([it])]
    for frame, item in zip(frames, kept, strict=True):
        frame["item"]["id"] = item.item_id
    return frames


async def recover(session: Session, exc: BaseException) -> bool:
    """Called by the reader when receiving failed. Returns True if the session is connected again."""
    s = session
    if s.closed:
        return False
    reason = f"{type(exc).__name__}: {exc}"
    logger.debug("fastvoice session %s: connection lost (%s)", s.session_id, type(exc).__name__)
    telemetry.execute(
        telemetry.REALTIME_SESSION_ERROR,
        {"monotonic_time": time.monotonic_ns()},
        {"session_id": s.session_id, "kind": type(exc).__name__, "reason": str(exc)},
    )
    s._take_pump_audio(s._conn)  # what the native pump sent on the dead connection
    s._conn = None
    s._reconnecting = True
    s._reset_after_reconnect()
    s.deliver([ev.RealtimeErrorEvent(error=exc)])
    cfg = s.reconnect_config
    for attempt, delay in enumerate(cfg.delays(), start=1):
        s.deliver([ev.RealtimeConnectionEvent(status="reconnecting", attempt=attempt, reason=reason)])
        await asyncio.sleep(delay)
        if s.closed:
            return False
        try:
            conn = await s._open()
        except (transport.TransportError, OSError) as err:
            reason = f"{type(err).__name__}: {err}"
            logger.debug("fastvoice session %s: reconnect attempt %d failed", s.session_id, attempt)
            continue
        if s.closed:
            await conn.close()
            return False
        try:
            await _restore(s, conn)
        except transport.TransportError as err:
            reason = f"{type(err).__name__}: {err}"
            continue
        s.reconnects += 1
        s.deliver([ev.RealtimeConnectionEvent(status="connected", attempt=attempt)])
        return True
    s._reconnecting = False
    s._finish(f"connection lost: {reason}")
    return False


async def _restore(s: Session, conn: transport.Connection) -> None:
    import json

    def dump(event: dict[str, Any]) -> str:
        return json.dumps(event, separators=(",", ":"))

    await conn.send_text(dump(P.build_session_update(s.agent, s.config)))
    for frame in _replay(s):
        await conn.send_text(dump(frame))
    s._conn = conn
    s._reconnecting = False
    lost: list[ev.RealtimeMessageLostEvent] = []
    resent_create = False
    # If this connection dies too, everything below goes back into the log (the send paths record it).
    for _, entry, sent in s._unacked.take():
        if isinstance(entry, bytes):
            await s._send_audio_payload(entry, count=not sent)
            continue
        reason = _not_resendable(s, entry)
        if reason is not None:
            if reason:
                lost.append(ev.RealtimeMessageLostEvent(entry["type"], entry, reason))
            continue
        resent_create = resent_create or entry["type"] == "response.create"
        await s.send_frame(entry)
    s._create_sent = resent_create
    if s._resume_create and not resent_create:
        s.request_response()  # one was held for the response the old connection was playing
    s._resume_create = False
    s.deliver(lost)
    await s.flush()
    s._attach_media(conn)


def _not_resendable(s: Session, frame: dict[str, Any]) -> str | None:
    """Why ``frame`` is not sent again (``""``: its effect already holds; ``None``: it is sent)."""
    kind = frame["type"]
    if kind == "response.cancel":
        return "the response it cancelled ended with the old connection"
    if kind == "output_audio_buffer.clear":
        return "the output audio it cleared ended with the old connection"
    if kind == "conversation.item.truncate":
        return "the new connection holds the conversation as text (no audio to truncate)"
    if kind in ("conversation.item.delete", "conversation.item.retrieve"):
        known = any(it.item_id == frame.get("item_id") for it in s._history.items())
        if not known:
            return (
                "" if kind == "conversation.item.delete" else "the item does not exist on the new connection"
            )
    return None
