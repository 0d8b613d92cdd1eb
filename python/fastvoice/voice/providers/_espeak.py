"""The process-wide eSpeak NG (the library and data in the `espeakng-loader` wheel, through
ctypes), shared by the eSpeak TTS (`providers.local`) and the Piper phonemiser
(`providers.piper`).

eSpeak NG is one global instance per process: its voice, rate, synthesis callback and the text
it is phonemising are global state, so every call holds `Espeak.lock` from start to end.
Everything here blocks: call it from a worker thread.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Callable
from typing import Any

from fastvoice.voice.events import ProviderUnavailableError, TTSError, UnknownVoiceError

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_BUFFER_MS = 40  # callback granularity: the first audio leaves after ~this much speech
_ESPEAK_RATE = 1
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
# espeak_TextToPhonemes' phonememode: bit 1 = IPA (UTF-8), no separator between phonemes, no ties.
_PHONEMES_IPA = 0x02

#: Punctuation that ends a clause and that Piper voices were trained to see after the clause.
CLAUSE_MARKS = ",.!?;:"
# espeak_TextToPhonemes reads one character past a clause's end before returning it, so the text
# it consumed for a clause ends with: the punctuation, closing quotes or brackets, spaces, and the
# first character of the next clause (none at the end of the text).
_CLAUSE_TAIL = re.compile(rf"([{re.escape(CLAUSE_MARKS)}]+)[\"'”’»)\]]*\s*[^\s{re.escape(CLAUSE_MARKS)}]?$")
# eSpeak reads the "." of an abbreviation together with the mark right after it, and loses the
# mark: "9 p.m., then" would have no comma, "at 9 a.m.?" no question. A space between them makes
# it cut the clause there as usual.
_MARK_AFTER_DOT = re.compile(rf"(?<=\.)(?=[{re.escape(CLAUSE_MARKS.replace('.', ''))}]+(?:\s|$))")
# eSpeak marks a word it read with another language's rules as "(fr)...(en)": not phonemes.
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")


class Espeak:
    """The eSpeak NG library, initialised once per process (`get`)."""

    lock = threading.Lock()
    _instance: Espeak | None = None

    @classmethod
    def get(cls, install_hint: str) -> Espeak:
        """The process-wide instance; `ProviderUnavailableError` (with `install_hint`) when
        espeakng-loader is missing."""
        with cls.lock:
            if cls._instance is None:
                cls._instance = cls(install_hint)
            return cls._instance

    def __init__(self, install_hint: str) -> None:
        try:
            import espeakng_loader  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ProviderUnavailableError(f"espeakng-loader is not installed; {install_hint}") from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        # const char *espeak_TextToPhonemes(const void **textptr, int textmode, int phonememode)
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        data = str(espeakng_loader.get_data_path()).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, 0)
        if rate <= 0:
            raise TTSError(f"eSpeak NG failed to initialise (data path {data.decode()!r})")
        self.lib = lib
        self.sample_rate = int(rate)
        self._voice: str | None = None  # the voice eSpeak has loaded (setting one reads files)
        self._sink: Callable[[bytes], bool] | None = None
        # Kept on the instance: ctypes must not free the trampoline while eSpeak holds it.
        self._callback = _CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _set_voice(self, voice: str, known: tuple[str, ...]) -> None:
        """Load `voice` unless it is loaded already. The caller holds `lock`."""
        if voice != self._voice:
            self._voice = None  # a failed load may leave eSpeak half-switched
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise UnknownVoiceError(voice, known)
            self._voice = voice

    def _on_audio(self, wav: Any, n: int, _events: Any) -> int:
        sink = self._sink
        if n > 0 and wav and sink is not None and not sink(ctypes.string_at(wav, n * 2)):
            return 1  # abort the synthesis: the consumer went away
        return 0

    def synth(
        self,
        text: str,
        voice: str,
        words_per_minute: int,
        sink: Callable[[bytes], bool],
        known: tuple[str, ...] = (),
    ) -> None:
        """Synthesise `text`, calling `sink(pcm16 at self.sample_rate)` per buffer (in this
        thread); `sink` returns False to stop early. `known` names the valid voices in the
        `UnknownVoiceError` raised for a voice eSpeak lacks."""
        with self.lock:
            self._set_voice(voice, known)
            self.lib.espeak_SetParameter(_ESPEAK_RATE, words_per_minute, 0)
            encoded = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(encoded, len(encoded))
            self._sink = sink
            try:
                err = self.lib.espeak_Synth(buf, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            finally:
                self._sink = None
            if err != 0:
                raise TTSError(f"eSpeak NG synthesis failed (error {err})")

    def phonemize(self, text: str, voice: str, known: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """`text` as eSpeak's IPA with stress marks, clause by clause: (the clause's phonemes,
        words separated by spaces; the punctuation that ended it in `text`, from `CLAUSE_MARKS`,
        or ""). Clauses are cut where eSpeak cuts them, so "3.14", "1,000" and "St. Paul"
        stay inside their clause."""
        # A NUL would end the C string early, and eSpeak drops the words after other control
        # characters.
        text = "".join(c if c.isprintable() else " " for c in text)
        text = _MARK_AFTER_DOT.sub(" ", text)
        encoded = text.encode("utf-8") + b"\0"
        out: list[tuple[str, str]] = []
        with self.lock:
            self._set_voice(voice, known)
            buf = ctypes.create_string_buffer(encoded, len(encoded))
            base = ctypes.addressof(buf)
            ptr = ctypes.c_void_p(base)
            start = 0
            # Each call returns one clause and moves `ptr` on; NULL once the text is used up.
            while ptr.value is not None:
                phonemes = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
                end = len(encoded) - 1 if ptr.value is None else ptr.value - base
                if end <= start and ptr.value is not None:  # no progress: never loop forever
                    raise TTSError("eSpeak NG stopped advancing through the text")
                consumed = encoded[start:end].decode("utf-8", errors="ignore")
                start = end
                ipa = _LANGUAGE_SWITCH.sub("", (phonemes or b"").decode("utf-8", errors="ignore"))
                ipa = " ".join(ipa.split())
                m = _CLAUSE_TAIL.search(consumed)
                out.append((ipa, m.group(1) if m else ""))
        return out


__all__ = ["CLAUSE_MARKS", "Espeak"]
