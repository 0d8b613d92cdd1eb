"""Sentence splitting of streamed text (fastvoice.voice.text)."""

from __future__ import annotations

import asyncio
import random

import pytest
from fastvoice.voice import SentenceSplitter, split_sentences
from fastvoice.voice.text import stream_sentences

TEXT = (
    'Hello there. Dr. Smith paid $3.50 for it! Really? "Yes." Then J. Doe left, e.g. at noon... '
    "It costs 3.14 dollars.\nA new line 你好。再见！"
)
EXPECTED = [
    "Hello there.",
    "Dr. Smith paid $3.50 for it!",
    "Really?",
    '"Yes."',
    "Then J. Doe left, e.g. at noon...",
    "It costs 3.14 dollars.",
    "A new line 你好。",
    "再见！",
]


def test_whole_text():
    assert split_sentences(TEXT) == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_sentences(seed):
    rng = random.Random(seed)
    splitter = SentenceSplitter()
    out: list[str] = []
    i = 0
    while i < len(TEXT):
        n = rng.randint(1, 12)
        out += splitter.push(TEXT[i : i + n])
        i += n
    assert out + splitter.flush() == EXPECTED


def test_sentence_is_released_as_soon_as_whitespace_confirms_it():
    s = SentenceSplitter()
    assert s.push("It is 3.") == []  # may still become 3.14
    assert s.push("14 now.") == []  # no whitespace yet: could go on
    assert s.push(" And") == ["It is 3.14 now."]
    assert s.flush() == ["And"]
    assert s.flush() == []


def test_run_on_text_is_cut_at_a_clause_within_max_chars():
    words = "one two three, four five six, seven eight nine, ten " * 20
    parts = split_sentences(words, max_chars=60)
    assert all(len(p) <= 60 for p in parts)
    assert " ".join(parts).split() == words.split()
    assert sum(p.endswith(",") for p in parts) >= len(parts) - 1


def test_unbreakable_text_is_cut_hard():
    parts = split_sentences("x" * 100, max_chars=30)
    assert "".join(parts) == "x" * 100 and max(map(len, parts)) == 30


def test_punctuation_only_pieces_are_dropped():
    assert split_sentences("... !! Hi. ?") == ["Hi."]
    assert split_sentences("   ") == []


def test_max_chars_must_be_sane():
    with pytest.raises(ValueError, match="max_chars"):
        SentenceSplitter(max_chars=3)


async def test_stream_sentences_yields_before_the_stream_ends():
    gate = asyncio.Event()
    seen: list[str] = []

    async def pieces():
        yield "First one. Sec"
        await asyncio.wait_for(gate.wait(), 5)  # only opens once the first sentence was yielded
        yield "ond one."

    async for sentence in stream_sentences(pieces()):
        seen.append(sentence)
        gate.set()
    assert seen == ["First one.", "Second one."]
