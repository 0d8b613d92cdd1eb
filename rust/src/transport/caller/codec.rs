//! Frame parsing and sample conversion for the caller stream: the JSON
//! member lookup every inbound frame goes through, and the G.711 / PCM16
//! codecs and resampler of each direction.

use std::collections::VecDeque;

use memchr::memmem;

use super::super::media::Codec;
use crate::g711::{alaw_encode_into, ulaw_encode_into, ALAW_DECODE, ULAW_DECODE};
use crate::pcm::f32_to_i16;
use crate::resample::plan::Quality;
use crate::resample::stream::{Input, StreamResampler};

/// The string value of the first member named `key` in a JSON frame, if it
/// is a plain string (no escapes; anything else is left to Python). Allocates
/// nothing: it runs on every inbound frame.
pub(super) fn string_member<'a>(frame: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let skip = |mut i: usize| {
        while frame.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut from = 0;
    loop {
        let at = from + memmem::find(frame.get(from..)?, key)?;
        from = at + key.len();
        // A member name: quoted, then a colon (a string value equal to the key is not).
        if at == 0 || frame[at - 1] != b'"' || frame.get(from) != Some(&b'"') {
            continue;
        }
        let i = skip(from + 1);
        if frame.get(i) != Some(&b':') {
            continue;
        }
        let i = skip(i + 1);
        if frame.get(i) != Some(&b'"') {
            return None; // not a string
        }
        let start = i + 1;
        let len = memchr::memchr2(b'"', b'\\', frame.get(start..)?)?;
        let end = start + len;
        return (frame.get(end) == Some(&b'"')).then(|| &frame[start..end]);
    }
}

pub(super) fn bytes_per_sample(codec: Codec) -> usize {
    if codec == Codec::Pcm16 {
        2
    } else {
        1
    }
}

/// A stateful resampler when the rates differ (an error, not silence or a
/// wrong pitch, when they cannot be converted).
pub(super) fn resampler(from: u32, to: u32) -> Result<Option<StreamResampler>, String> {
    if from == to {
        return Ok(None);
    }
    StreamResampler::new(i64::from(from), i64::from(to), 1, Quality::LowLatency)
        .map(Some)
        .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))
}

/// Decoded caller audio to samples at the caller's rate.
pub(super) fn decode(codec: Codec, big_endian: bool, bytes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    match codec {
        Codec::Ulaw => out.extend(bytes.iter().map(|&b| ULAW_DECODE[usize::from(b)])),
        Codec::Alaw => out.extend(bytes.iter().map(|&b| ALAW_DECODE[usize::from(b)])),
        Codec::Pcm16 if big_endian => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]])),
        ),
        Codec::Pcm16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]])),
        ),
    }
}

pub(super) fn encode(
    codec: Codec,
    big_endian: bool,
    pcm: &[i16],
    codes: &mut Vec<u8>,
    out: &mut VecDeque<u8>,
) {
    match codec {
        Codec::Pcm16 if big_endian => out.extend(pcm.iter().flat_map(|s| s.to_be_bytes())),
        Codec::Pcm16 => out.extend(pcm.iter().flat_map(|s| s.to_le_bytes())),
        Codec::Ulaw | Codec::Alaw => {
            codes.resize(pcm.len(), 0);
            if codec == Codec::Ulaw {
                ulaw_encode_into(pcm, codes);
            } else {
                alaw_encode_into(pcm, codes);
            }
            out.extend(codes.iter().copied());
        }
    }
}

/// Resample `pcm`, appending the result (as PCM16) to `out`.
pub(super) fn resample(
    rs: &mut StreamResampler,
    pcm: &[i16],
    tmp: &mut Vec<f32>,
    out: &mut Vec<i16>,
) {
    tmp.clear();
    if rs.process(Input::I16(pcm), tmp).is_ok() {
        out.extend(tmp.iter().map(|&x| f32_to_i16(x)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_member_finds_plain_strings_and_leaves_the_rest() {
        let f = br#"{"event": "media","media":{"payload" :"QUJD","track":"inbound"}}"#;
        assert_eq!(string_member(f, b"event"), Some(&b"media"[..]));
        assert_eq!(string_member(f, b"payload"), Some(&b"QUJD"[..]));
        assert_eq!(string_member(f, b"missing"), None);
        assert_eq!(string_member(br#"{"event":1}"#, b"event"), None);
        assert_eq!(string_member(br#"{"event":"a\"b"}"#, b"event"), None);
        assert_eq!(string_member(br#"{"event":"unterminated"#, b"event"), None);
        assert_eq!(string_member(br#"{"event""#, b"event"), None);
        // A value that merely contains the key, before the real member.
        let tricky = br#"{"note":"event","x_event":"no","event":"mark"}"#;
        assert_eq!(string_member(tricky, b"event"), Some(&b"mark"[..]));
    }
}
