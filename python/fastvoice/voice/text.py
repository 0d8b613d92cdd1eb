"""Sentence splitting for streamed text.

The pipeline sends each sentence to TTS as soon as it is complete, so the first audio does
not wait for the whole reply. A sentence is complete when its terminator is followed by
whitespace: until then "3." may become "3.14" and "Dr." may go on with a name, so the
splitter holds the tail back. A run-on text is cut at a clause boundary after `max_chars`
so latency stays bounded whatever the workflow produces.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

# Terminators followed by whitespace (closing quotes/brackets stay with their sentence),
# CJK full stops (no space follows them), and line breaks (list items, paragraphs).
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|[。！？]+[」』”’)]*|\n")
_LAST_WORD = re.compile(r"(\S+)$")
_CLAUSE = re.compile(r"[,;:–—]\s")

# Lower-case words that end with a period without ending a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc approx dept est fig inc ltd co corp no vol jan feb mar apr "
    "jun jul aug sep sept oct nov dec mt ft".split()
)


def _is_abbreviation(before: str) -> bool:
    """True when the word before a single '.' makes it an abbreviation, not a full stop."""
    m = _LAST_WORD.search(before)
    if m is None:
        return False
    word = m.group(1).lstrip("\"'“‘([")
    if "." in word:  # e.g. / i.e. / U.S.
        return True
    if len(word) == 1 and word.isupper():  # an initial: "J. Smith"
        return True
    return word.lower() in _ABBREVIATIONS


class SentenceSplitter:
    """Incremental splitter: `push(piece)` returns the sentences completed so far,
    `flush()` the rest at the end of the text."""

    def __init__(self, max_chars: int = 250) -> None:
        if max_chars < 16:
            raise ValueError(f"max_chars must be at least 16, got {max_chars}")
        self.max_chars = max_chars
        self._buf = ""

    def push(self, piece: str) -> list[str]:
        self._buf += piece
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            if m.end() <= start:
                continue
            if m.group() == "." and _is_abbreviation(self._buf[start : m.start()]):
                continue
            self._take(out, self._buf[start : m.end()])
            start = m.end()
        rest = self._buf[start:]
        while len(rest) > self.max_chars:
            cut = self._cut_point(rest)
            self._take(out, rest[:cut])
            rest = rest[cut:]
        self._buf = rest
        return out

    def flush(self) -> list[str]:
        out: list[str] = []
        self._take(out, self._buf)
        self._buf = ""
        return out

    def _cut_point(self, text: str) -> int:
        window = text[: self.max_chars]
        clauses = [m.end() for m in _CLAUSE.finditer(window)]
        if clauses and clauses[-1] > self.max_chars // 3:
            return clauses[-1]
        space = window.rfind(" ")
        return space + 1 if space > self.max_chars // 3 else self.max_chars

    @staticmethod
    def _take(out: list[str], text: str) -> None:
        text = text.strip()
        # Pure punctuation ("...", a lone quote) has nothing to say: don't send it to TTS.
        if any(c.isalnum() for c in text):
            out.append(text)


def split_sentences(text: str, max_chars: int = 250) -> list[str]:
    """All sentences of a complete text."""
    splitter = SentenceSplitter(max_chars)
    return splitter.push(text) + splitter.flush()


async def stream_sentences(pieces: AsyncIterable[str], max_chars: int = 250) -> AsyncIterator[str]:
    """Sentences of streamed text, each yielded as soon as it is complete."""
    splitter = SentenceSplitter(max_chars)
    async for piece in pieces:
        for sentence in splitter.push(piece):
            yield sentence
    for sentence in splitter.flush():
        yield sentence
