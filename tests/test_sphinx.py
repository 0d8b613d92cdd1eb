"""The PocketSphinx decoder fastvoice drives through the C API (``voice.providers._sphinx``): the same
words as the wheel's own binding, and no GIL held while it decodes, so an event loop beside it keeps
running (the reason it exists: the Cython binding holds the GIL for every call)."""

from __future__ import annotations

import asyncio
import time

import pytest
from _data import data_path
from _speech import CLIPS
from fastvoice import audio

pocketsphinx = pytest.importorskip("pocketsphinx", reason="the [light] extra (pocketsphinx) is not installed")

from fastvoice.voice.providers._sphinx import SphinxDecoder  # noqa: E402


def _pcm16k(name: str) -> bytes:
    wav = audio.wav_decode(data_path(name).read_bytes())
    mono = audio.to_mono(wav.pcm16, wav.channels) if wav.channels > 1 else wav.pcm16
    return bytes(
        audio.to_pcm16(audio.resample(audio.from_pcm16(bytes(mono), "float32"), wav.sample_rate, 16000))
    )


def _decode(decoder: object, pcm: bytes, *, chunk: int, cython: bool) -> str:
    decoder.start_utt()  # type: ignore[attr-defined]
    for i in range(0, len(pcm), chunk):
        if cython:
            decoder.process_raw(pcm[i : i + chunk], False, False)  # type: ignore[attr-defined]
        else:
            decoder.process_raw(pcm[i : i + chunk])  # type: ignore[attr-defined]
    decoder.end_utt()  # type: ignore[attr-defined]
    hyp = decoder.hyp()  # type: ignore[attr-defined]
    return str(hyp.hypstr if cython else hyp)


@pytest.mark.parametrize("name", ["voice_sample_24k.wav", "weather_22k.wav"])
def test_same_words_and_segments_as_the_wheels_own_binding(name: str) -> None:
    pcm = _pcm16k(name)
    ours = SphinxDecoder(samprate=16000, loglevel="FATAL", fwdflat=False)
    theirs = pocketsphinx.Decoder(samprate=16000, loglevel="FATAL", fwdflat=False, maxhmmpf=8000)
    text = _decode(ours, pcm, chunk=3200, cython=False)
    assert text and text == _decode(theirs, pcm, chunk=3200, cython=True)
    segments = ours.segments()
    assert segments == [(s.word, s.start_frame, s.end_frame) for s in theirs.seg()]
    assert [w.split("(")[0] for w, _, _ in segments if w[0] not in "<["] == text.split()  # word(2): a variant
    assert ours.frate == theirs.config["frate"] == 100
    # A frame index is a time: the last word ends within the clip.
    assert segments[-1][2] / ours.frate <= len(pcm) / 32000


@pytest.mark.parametrize("streamed", [False, True])
def test_the_tighter_default_search_hears_what_the_librarys_default_hears(streamed: bool) -> None:
    # maxhmmpf 8000 (ours) against the library's 30000, on every recording in tests/data, in one order
    # so both decoders' live cepstral means evolve alike.
    opts = {"samprate": 16000, "loglevel": "FATAL", **({"fwdflat": False} if streamed else {})}
    ours, theirs = SphinxDecoder(**opts), pocketsphinx.Decoder(**opts)
    for name in CLIPS:
        pcm = _pcm16k(name)
        heard = []
        for decoder, cython in ((ours, False), (theirs, True)):
            if streamed:
                heard.append(_decode(decoder, pcm, chunk=3200, cython=cython))
            else:
                decoder.start_utt()
                if cython:
                    decoder.process_raw(pcm, False, True)
                else:
                    decoder.process_raw(pcm, full_utt=True)
                decoder.end_utt()
                hyp = decoder.hyp()
                heard.append(str(hyp.hypstr if cython else hyp))
        assert heard[0] == heard[1], (name, heard)


def test_whole_utterance_mode_and_an_empty_utterance() -> None:
    decoder = SphinxDecoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(_pcm16k("voice_sample_24k.wav"), full_utt=True)
    decoder.end_utt()
    assert "wonderful" in (decoder.hyp() or "")
    decoder.start_utt()  # the same decoder again, given nothing: no words, no crash
    decoder.end_utt()
    assert not (decoder.hyp() or "").strip()
    assert [w for w, _, _ in decoder.segments() if w[0] not in "<["] == []


def test_misuse_and_bad_options_raise_runtime_errors() -> None:
    with pytest.raises(RuntimeError, match="PocketSphinx"):
        SphinxDecoder(hmm="/nonexistent/model", loglevel="FATAL")
    decoder = SphinxDecoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    with pytest.raises(RuntimeError, match="start an utterance"):
        decoder.start_utt()  # one is running already
    decoder.end_utt()


async def test_an_event_loop_keeps_running_while_a_decoder_decodes() -> None:
    # ~10 s of speech in one call: ~1-2 s of CPU inside C. Were the GIL held (as the Cython binding
    # does), the loop below could not take a single turn until the call returned.
    pcm = _pcm16k("weather_22k.wav") * 4
    decoder = SphinxDecoder(samprate=16000, loglevel="FATAL")
    ticks = 0
    decode = asyncio.ensure_future(asyncio.to_thread(_decode, decoder, pcm, chunk=len(pcm), cython=False))
    t0 = time.monotonic()
    while not decode.done():
        ticks += 1
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - t0
    assert "weather" in await decode
    assert elapsed > 0.2, elapsed  # the decode took long enough for the check to mean something
    assert ticks >= elapsed / 0.005 * 0.3, (ticks, elapsed)  # the loop ran through the decode
