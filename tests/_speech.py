"""What is said in the four speech clips of tests/data (see its README), and word error rate."""

from __future__ import annotations

import re

#: file -> reference transcript, from tests/data/README.md.
CLIPS = {
    "voice_sample_24k.wav": "Have a wonderful day.",
    "weather_22k.wav": "What is the weather like in Paris today?",
    "two_turns_16k.wav": "Hello there. Please tell me a joke about computers.",
    "lights_48k_stereo_f32.wav": "Turn on the kitchen lights.",
}


def words(text: str) -> list[str]:
    """Lower case, punctuation dropped (apostrophes kept inside words)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).replace(" '", " ").split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions (word-level Levenshtein distance)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(reference: str, hypothesis: str) -> float:
    return word_errors(reference, hypothesis) / max(1, len(words(reference)))


def overall_wer(pairs: list[tuple[str, str]]) -> float:
    """Errors over all clips divided by all reference words (not the mean of per-clip rates)."""
    errors = sum(word_errors(r, h) for r, h in pairs)
    return errors / max(1, sum(len(words(r)) for r, _ in pairs))
