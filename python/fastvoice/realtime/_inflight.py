"""What the server has not acknowledged yet: client messages in flight and uncommitted input audio.

A new connection is a new server session, so whatever the old server had not acknowledged when the
connection died must be sent again, in the order it was first sent. :class:`Unacked` keeps, for one session:

- each tracked client message until the server acknowledges it (``conversation.item.create`` →
  ``conversation.item.added``/``created`` with that item id, which is why items get client ids;
  ``response.create`` → ``response.created``; ``input_audio_buffer.commit`` → ``committed``;
  ``conversation.item.truncate`` → ``truncated``; ``delete`` → ``deleted``; ``retrieve`` → ``retrieved``;
  ``session.update`` → ``updated``; ``response.cancel`` → ``response.done``; an ``error`` naming the
  message's ``event_id`` acknowledges it too);
- the input audio appended since the server last committed (or the client cleared) the buffer, bounded by
  ``limit`` bytes: the oldest chunks go first and are counted, and only become ``dropped_bytes`` if a
  reconnect actually needs them (audio committed in the meantime was not lost).

Audio is one deque append per chunk; messages are a short list (the server acknowledges within a round trip).
"""

from __future__ import annotations

import collections
import itertools
from typing import Any

from fastvoice.realtime._protocol import canonical_server_event_type

__all__ = ["TRACKED", "Entry", "Unacked"]

TRACKED = frozenset(
    {
        "session.update",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "response.create",
        "response.cancel",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "output_audio_buffer.clear",
    }
)
"""Client event types tracked until acknowledged (``input_audio_buffer.append`` is kept as audio)."""

# Server event (GA name) -> the client event type it acknowledges.
_ACKS = {
    "session.updated": "session.update",
    "conversation.item.added": "conversation.item.create",
    "conversation.item.truncated": "conversation.item.truncate",
    "conversation.item.deleted": "conversation.item.delete",
    "conversation.item.retrieved": "conversation.item.retrieve",
    "response.created": "response.create",
    "response.done": "response.cancel",
    "input_audio_buffer.committed": "input_audio_buffer.commit",
    "input_audio_buffer.cleared": "input_audio_buffer.clear",
    "output_audio_buffer.cleared": "output_audio_buffer.clear",
    "error": "",
}
ACK_EVENTS = frozenset([*_ACKS, "conversation.item.created"])
"""Server event types that may acknowledge something (the reader checks membership before calling ``ack``)."""

MAX_FRAMES = 1024
"""Messages tracked at most; a server that leaves more unacknowledged is broken (the oldest is reported)."""

_item_ids = itertools.count(1)

Entry = tuple[int, bytes | dict[str, Any], bool]
"""``(seq, audio bytes or client event, already sent)``."""


def _key(frame: dict[str, Any]) -> str | None:
    """What the acknowledgement names: the item id for item events, else nothing (first in order)."""
    kind = frame["type"]
    if kind == "conversation.item.create":
        item = frame.get("item")
        return item.get("id") if isinstance(item, dict) else None
    if kind in ("conversation.item.truncate", "conversation.item.delete", "conversation.item.retrieve"):
        return frame.get("item_id")
    return None


def _ack_key(kind: str, data: dict[str, Any]) -> str | None:
    if kind in ("conversation.item.added", "conversation.item.retrieved"):
        item = data.get("item")
        return item.get("id") if isinstance(item, dict) else None
    if kind in ("conversation.item.truncated", "conversation.item.deleted"):
        return data.get("item_id")
    return None


class Unacked:
    """See the module docstring. ``enabled=False`` (no reconnection) keeps nothing."""

    __slots__ = ("_audio", "_evicted", "_frames", "_seq", "audio_size", "dropped_bytes", "enabled", "limit")

    def __init__(self, limit: int, *, enabled: bool = True) -> None:
        self.limit = limit
        self.enabled = enabled
        self._seq = 0
        self._audio: collections.deque[tuple[int, bytes, bool]] = collections.deque()
        self._frames: list[tuple[int, dict[str, Any], bool]] = []
        # Audio that did not fit: [seq of its newest chunk, bytes]; lost only if a reconnect needs it.
        self._evicted: collections.deque[list[int]] = collections.deque()
        self.audio_size = 0
        self.dropped_bytes = 0

    # ---- recording

    def add_audio(self, chunk: bytes, *, sent: bool, evicted: int = 0) -> None:
        """Input audio (wire bytes) just sent (``sent``) or held for later; ``evicted`` bytes of earlier audio
        (from the native pump) did not fit its own retention."""
        if not self.enabled:
            return
        self._seq += 1
        if evicted:
            self._evict(self._seq, evicted)
        if not chunk:
            return
        self._audio.append((self._seq, chunk, sent))
        self.audio_size += len(chunk)
        while self.audio_size > self.limit and self._audio:
            seq, old, _ = self._audio.popleft()
            self.audio_size -= len(old)
            self._evict(seq, len(old))

    def _evict(self, seq: int, n: int) -> None:
        ev = self._evicted
        # Merge with the previous record unless a commit lies between them (it may acknowledge only one).
        if ev and not any(ev[-1][0] < s < seq for s, f, _ in self._frames if f["type"] in _BOUNDARIES):
            ev[-1][0] = seq
            ev[-1][1] += n
        else:
            ev.append([seq, n])

    def add_frame(self, frame: dict[str, Any], *, sent: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Record a client event; returns it as it must go out (an item without an id gets a client id, so
        its acknowledgement can be recognised) and the events no longer tracked because of the bound."""
        if not self.enabled or frame.get("type") not in TRACKED:
            return frame, []
        kind = frame["type"]
        if kind == "conversation.item.create":
            item = frame.get("item")
            if isinstance(item, dict) and not item.get("id"):
                frame = {**frame, "item": {**item, "id": f"fv_item_{next(_item_ids)}"}}
        elif kind == "input_audio_buffer.clear":
            self._drop_audio_before(self._seq + 1)  # the app wants the buffered audio gone
        self._seq += 1
        self._frames.append((self._seq, frame, sent))
        dropped: list[dict[str, Any]] = []
        while len(self._frames) > MAX_FRAMES:
            dropped.append(self._frames.pop(0)[1])
        return frame, dropped

    def add_pending(self, frame: dict[str, Any]) -> None:
        """An untracked event (e.g. a raw append) that could not be sent now: send it after the reconnect."""
        if not self.enabled:
            return
        self._seq += 1
        self._frames.append((self._seq, frame, False))

    # ---- acknowledgements

    def ack(self, kind: str, data: dict[str, Any]) -> bool:
        """Forget what server event ``kind`` acknowledges. Returns True for an
        ``input_audio_buffer.committed`` that answers no commit of ours (server VAD): the caller then also
        forgets the native pump's audio."""
        kind = canonical_server_event_type(kind)
        if kind == "error":
            err = data.get("error")
            event_id = err.get("event_id") if isinstance(err, dict) else None
            if isinstance(event_id, str):
                self._remove(lambda f: f.get("event_id") == event_id)
            elif isinstance(err, dict) and err.get("code") == "response_cancel_not_active":
                self._remove(lambda f: f["type"] == "response.cancel")
            return False
        client = _ACKS.get(kind)
        if client is None:
            return False
        key = _ack_key(kind, data)
        seq = self._remove(lambda f: f["type"] == client and (key is None or _key(f) == key))
        if kind == "input_audio_buffer.committed":
            if seq is None:  # committed by the server on its own: everything sent so far
                self._drop_audio_before(self._seq + 1)
                return True
            self._drop_audio_before(seq)
        elif kind == "input_audio_buffer.cleared" and seq is None:
            self._drop_audio_before(self._seq + 1)
        return False

    def _remove(self, match: Any) -> int | None:
        for i, (seq, f, _) in enumerate(self._frames):
            if match(f):
                del self._frames[i]
                return seq
        return None

    def _drop_audio_before(self, seq: int) -> None:
        audio = self._audio
        while audio and audio[0][0] < seq:
            self.audio_size -= len(audio.popleft()[1])
        ev = self._evicted
        while ev and ev[0][0] < seq:
            ev.popleft()

    # ---- after a reconnect

    def take(self) -> list[Entry]:
        """Everything to send again, in the original order; what did not fit becomes ``dropped_bytes``."""
        self.dropped_bytes += sum(n for _, n in self._evicted)
        self._evicted.clear()
        entries: list[Entry] = [*self._audio, *self._frames]
        entries.sort(key=lambda e: e[0])
        self._audio.clear()
        self._frames.clear()
        self.audio_size = 0
        return entries

    @property
    def frames(self) -> list[dict[str, Any]]:
        """The client events not acknowledged yet (oldest first)."""
        return [f for _, f, _ in self._frames]


_BOUNDARIES = ("input_audio_buffer.commit", "input_audio_buffer.clear")
