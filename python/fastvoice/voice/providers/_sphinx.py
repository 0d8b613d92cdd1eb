"""PocketSphinx through its C API (ctypes), so a decode never holds the GIL.

The `pocketsphinx` wheel's Cython binding holds the GIL for the whole of each call, and a 100 ms
`process_raw` is ~20 ms of CPU. A server decoding several turns at once spent most of its event
loop's time waiting for the GIL behind the decoder threads: a pure-Python loop ran at 0.21x its
speed beside one decoding thread, 0.97x with this module, because ctypes releases the GIL around
every foreign call. The extension module exports the library's C API (`ps_init`,
`ps_process_raw`, ...), so it is loaded here as a plain shared library, with the models and
defaults of `pocketsphinx.Decoder`.

A decoder is not thread-safe: one thread at a time (its owner holds a lock or owns it outright).
"""

from __future__ import annotations

import ctypes
import json
import threading
from typing import Any

__all__ = ["SphinxDecoder"]

_P = ctypes.c_void_p
_INT = ctypes.c_int
_LIB: Any = None
_LIB_LOCK = threading.Lock()


def _lib() -> Any:
    """The C API of the installed `pocketsphinx` wheel (ImportError when it is missing)."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        import pocketsphinx._pocketsphinx as ext  # type: ignore[import-untyped]

        lib = ctypes.CDLL(ext.__file__)
        sigs: dict[str, tuple[list[Any], Any]] = {
            "ps_config_parse_json": ([_P, ctypes.c_char_p], _P),
            "ps_config_free": ([_P], ctypes.c_int),
            "ps_config_int": ([_P, ctypes.c_char_p], ctypes.c_long),
            "ps_init": ([_P], _P),
            "ps_free": ([_P], ctypes.c_int),
            "ps_get_config": ([_P], _P),
            "ps_start_utt": ([_P], ctypes.c_int),
            "ps_process_raw": ([_P, ctypes.c_char_p, ctypes.c_size_t, _INT, _INT], _INT),
            "ps_end_utt": ([_P], ctypes.c_int),
            "ps_get_hyp": ([_P, ctypes.POINTER(ctypes.c_int32)], ctypes.c_char_p),
            "ps_seg_iter": ([_P], _P),
            "ps_seg_next": ([_P], _P),
            "ps_seg_word": ([_P], ctypes.c_char_p),
            "ps_seg_frames": ([_P, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)], None),
            "ps_seg_free": ([_P], None),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        _LIB = lib
        return lib


def _defaults() -> dict[str, str | int]:
    """The acoustic model, language model and dictionary `pocketsphinx.Decoder` loads by default, and a
    tighter search: at most 8,000 active HMMs per frame (the library's default is 30,000) cost 10-20 %
    less CPU and gave the same words on every recording in tests/data, streamed and whole (5,000 saved
    30-40 % but changed a word)."""
    import pocketsphinx

    return {
        "hmm": pocketsphinx.get_model_path("en-us/en-us"),
        "lm": pocketsphinx.get_model_path("en-us/en-us.lm.bin"),
        "dict": pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"),
        "maxhmmpf": 8000,
    }


class SphinxDecoder:
    """One PocketSphinx decoder with the bundled US English models. `options` are decoder
    parameters as `pocketsphinx.Decoder` takes them (``samprate=16000``, ``fwdflat=False``...).
    Loading takes ~1.4 s: do it in a worker thread. Failures raise RuntimeError."""

    def __init__(self, **options: str | int | float | bool) -> None:
        lib = _lib()
        config = lib.ps_config_parse_json(None, json.dumps({**_defaults(), **options}).encode())
        if not config:
            raise RuntimeError(f"PocketSphinx rejected the decoder options {sorted(options)}")
        try:
            self._ps = lib.ps_init(config)  # retains the config
        finally:
            lib.ps_config_free(config)
        if not self._ps:
            raise RuntimeError("PocketSphinx failed to initialise (its model files may be missing)")
        self._lib = lib
        #: Feature frames per second: a segment's frame index / frate is seconds.
        self.frate = int(lib.ps_config_int(lib.ps_get_config(self._ps), b"frate"))

    def _check(self, rc: int, what: str) -> None:
        if rc < 0:
            raise RuntimeError(f"PocketSphinx failed to {what}")

    def start_utt(self) -> None:
        self._check(self._lib.ps_start_utt(self._ps), "start an utterance")

    def process_raw(self, pcm16: bytes, full_utt: bool = False) -> None:
        """Decode PCM16 mono at the decoder's rate; ``full_utt``: this is the whole utterance (its
        cepstral mean is taken over all of it rather than live)."""
        n = len(pcm16) // 2
        self._check(self._lib.ps_process_raw(self._ps, pcm16, n, 0, int(full_utt)), f"process {n} samples")

    def end_utt(self) -> None:
        self._check(self._lib.ps_end_utt(self._ps), "end the utterance")

    def hyp(self) -> str | None:
        """The best hypothesis so far, or None when there is none."""
        text = self._lib.ps_get_hyp(self._ps, ctypes.byref(ctypes.c_int32()))
        return None if text is None else text.decode("utf-8", errors="replace")

    def segments(self) -> list[tuple[str, int, int]]:
        """The best hypothesis as (word, first frame, last frame inclusive), fillers included."""
        lib, out = self._lib, []
        sf, ef = ctypes.c_int(), ctypes.c_int()
        seg = lib.ps_seg_iter(self._ps)
        while seg:  # ps_seg_next frees the iterator when it returns NULL
            lib.ps_seg_frames(seg, ctypes.byref(sf), ctypes.byref(ef))
            out.append(((lib.ps_seg_word(seg) or b"").decode("utf-8", errors="replace"), sf.value, ef.value))
            seg = lib.ps_seg_next(seg)
        return out

    def __del__(self) -> None:
        ps, self._ps = getattr(self, "_ps", None), None
        if ps:
            self._lib.ps_free(ps)
