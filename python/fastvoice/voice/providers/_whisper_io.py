"""What goes into and comes out of the Whisper model: log-mel features and tokens.

Whisper's front end, written from its definition (16 kHz, 25 ms Hann window, 10 ms hop, 80 Slaney
mel bands, log10 clamped 8 decades below the peak, scaled to about [-1, 1]), so that CTranslate2
is the only engine dependency: no PyAV, no tokenizers, no hub client (about 140 MB less install).

The encoder window need not be Whisper's fixed 30 s. The positional embeddings cover 30 s, but a
clip padded to a shorter window decodes to the same words (checked on every test clip) for a
fraction of the encoder's cost, which is most of a short clip's decode; `window_frames` picks the
smallest of a few windows that leaves at least a second of padding, because a window that ends
right at the speech made the decoder repeat the last sentence.
"""

from __future__ import annotations

import itertools
import json
import re
from functools import cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
N_FFT = 400  # 25 ms
N_MELS = 80
FRAMES_PER_S = SAMPLE_RATE // HOP
MAX_FRAMES = 3000  # 30 s, the model's positional range
#: Encoder windows tried in order (frames); a clip gets the first with >= 1 s of padding.
WINDOWS = (1000, 1500, 2000, MAX_FRAMES)
MAX_SAMPLES = (MAX_FRAMES - FRAMES_PER_S) * HOP  # longest piece one decode takes (29 s)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear to 1 kHz, logarithmic above (what Whisper's filters were built with).
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


@cache
def mel_filters() -> np.ndarray:
    """(80, 201) triangular filters, area-normalised ("slaney" norm)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.array(SAMPLE_RATE / 2.0))), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@cache
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def window_frames(n_samples: int) -> int:
    """The encoder window (frames) for a clip of `n_samples` at 16 kHz (at most `MAX_SAMPLES`)."""
    needed = -(-n_samples // HOP) + FRAMES_PER_S
    for frames in WINDOWS:
        if needed <= frames:
            return frames
    return MAX_FRAMES


def log_mel(samples: np.ndarray, frames: int) -> np.ndarray:
    """(1, 80, frames) C-contiguous float32 features of float32 `samples` at 16 kHz, zero-padded
    (or cut) to `frames` frames."""
    total = frames * HOP
    x = np.zeros(total, dtype=np.float32)
    n = min(len(samples), total)
    x[:n] = samples[:n]
    padded = np.pad(x, N_FFT // 2, mode="reflect")  # centred frames, as Whisper's STFT
    starts = HOP * np.arange(frames)
    frames_view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[starts]
    power = np.abs(np.fft.rfft(frames_view * _window(), axis=1)) ** 2
    mel = power.astype(np.float32) @ mel_filters().T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return np.ascontiguousarray(((log + 4.0) / 4.0).T[None], dtype=np.float32)


# ---- tokens
# -------------------------------------------------------------------------------------------------


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (bytes that print stand for themselves)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# GPT-2's pre-tokeniser, with `re`'s classes for letters and digits.
_PIECES = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


class Tokenizer:
    """Whisper's byte-level BPE vocabulary (`vocabulary.txt`, one token per line, id = line), for
    decoding output ids and encoding prompts (merges from `tokenizer.json`, loaded on first use)."""

    def __init__(self, model_dir: Path) -> None:
        self._dir = model_dir
        self.tokens = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self.eot = self._ids["<|endoftext|>"]
        self.sot = self._ids["<|startoftranscript|>"]
        self.sot_prev = self._ids["<|startofprev|>"]
        self.no_timestamps = self._ids["<|notimestamps|>"]
        alphabet = _byte_alphabet()
        self._to_char = alphabet
        self._to_byte = {c: b for b, c in alphabet.items()}
        self._ranks: dict[tuple[str, str], int] | None = None

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; special tokens (ids from `<|endoftext|>` up) are dropped."""
        data = bytes(self._to_byte[c] for i in ids if 0 <= i < self.eot for c in self.tokens[i])
        return data.decode("utf-8", errors="replace")

    def encode(self, text: str) -> list[int]:
        if self._ranks is None:
            spec = json.loads((self._dir / "tokenizer.json").read_text(encoding="utf-8"))
            merges = spec["model"]["merges"]
            pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
            self._ranks = {(a, b): rank for rank, (a, b) in enumerate(pairs)}
        ids: list[int] = []
        for piece in _PIECES.findall(text):
            ids.extend(self._ids[t] for t in self._bpe("".join(self._to_char[b] for b in piece.encode())))
        return ids

    def _bpe(self, word: str) -> list[str]:
        assert self._ranks is not None
        parts = list(word)
        while len(parts) > 1:
            never = 1 << 30
            rank, i = min(
                (self._ranks.get(pair, never), i) for i, pair in enumerate(itertools.pairwise(parts))
            )
            if rank == never:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def prompt(self, previous_text: str | None) -> list[int]:
        """The decoder's start: optional previous text (spellings, names), then English-only
        transcription without timestamps (tiny.en has no language or task tokens)."""
        start = [self.sot, self.no_timestamps]
        if not previous_text or not previous_text.strip():
            return start
        context = self.encode(" " + previous_text.strip())[-223:]  # the model's limit: half of 448
        return [self.sot_prev, *context, *start]
