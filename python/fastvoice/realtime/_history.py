"""The conversation history a session keeps, mirrored from the server's ``conversation.item.*`` events.

Items are kept in server order (``previous_item_id`` places an item; otherwise it goes last). Transcripts
arrive in separate events and are folded into their items. A snapshot (a tuple) is built only when something
changed and someone is told (once per batch), not per event.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastvoice.realtime.events import (
    AssistantMessageItem,
    HistoryItem,
    UserMessageItem,
    history_item_from_server,
)

__all__ = ["History"]


class History:
    __slots__ = ("_items", "_snapshot", "changed")

    def __init__(self) -> None:
        self._items: list[HistoryItem] = []
        self._snapshot: tuple[HistoryItem, ...] = ()
        self.changed = False

    def _index(self, item_id: str) -> int:
        for i in range(len(self._items) - 1, -1, -1):
            if self._items[i].item_id == item_id:
                return i
        return -1

    def upsert(self, raw: dict[str, Any], previous_item_id: str | None) -> None:
        item = history_item_from_server(raw)
        if item is None or not item.item_id:
            return
        i = self._index(item.item_id)
        if i >= 0:
            old = self._items[i]
            # A later event without the transcript (e.g. item.done before transcription) keeps the one we
            # already have.
            if isinstance(item, UserMessageItem | AssistantMessageItem) and isinstance(old, type(item)):
                if item.transcript is None and old.transcript is not None:
                    item = dataclasses.replace(item, transcript=old.transcript)
            if item != old:
                self._items[i] = item
                self.changed = True
            return
        j = self._index(previous_item_id) if previous_item_id else -1
        if j >= 0:
            self._items.insert(j + 1, item)
        else:
            self._items.append(item)
        self.changed = True

    def delete(self, item_id: str) -> None:
        i = self._index(item_id)
        if i >= 0:
            del self._items[i]
            self.changed = True

    def set_user_transcript(self, item_id: str, text: str) -> None:
        i = self._index(item_id)
        item = self._items[i] if i >= 0 else None
        if isinstance(item, UserMessageItem):
            self._items[i] = dataclasses.replace(item, transcript=text)
            self.changed = True

    def set_assistant_text(self, item_id: str, text: str) -> None:
        i = self._index(item_id)
        item = self._items[i] if i >= 0 else None
        if isinstance(item, AssistantMessageItem):
            if item.has_audio or item.text is None:
                self._items[i] = dataclasses.replace(item, transcript=text)
            else:
                self._items[i] = dataclasses.replace(item, text=text)
            self.changed = True

    def snapshot(self) -> tuple[HistoryItem, ...]:
        if self.changed:
            self._snapshot = tuple(self._items)
            self.changed = False
        return self._snapshot

    def items(self) -> list[HistoryItem]:
        return list(self._items)
