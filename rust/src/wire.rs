//! Realtime wire fast paths: base64 audio inside JSON text frames.
//!
//! The OpenAI Realtime API moves audio as base64 strings inside JSON text frames,
//! roughly 25 frames per second each way. Doing that with a JSON library means
//! an extra copy of the base64 text and a Python dict per frame; here both
//! directions go straight between PCM and frame bytes in one pass each.
//!
//! Contract used by the transport (`crate::transport`):
//! - `pub fn write_append_frame(pcm: &[i16], out: &mut Vec<u8>)` appends the exact
//!   bytes of `{"type":"input_audio_buffer.append","audio":"<base64 of pcm LE>"}`.
//! - `pub fn parse_audio_delta(frame: &[u8]) -> Result<Option<AudioDeltaParts>, WireError>`
//!   recognises `response.output_audio.delta` / `response.audio.delta` frames.
//! - `AudioDelta` (the pyclass) has `AudioDelta::from_parts(parts) -> AudioDelta`.
//!
//! Sending: the frame is a fixed prefix, the base64 text and a fixed suffix; base64
//! never needs JSON escaping, so no serializer is involved. Float input is
//! converted to PCM16 block by block on the stack and encoded as it goes.
//!
//! Receiving: [`scan`] locates the members of a delta frame without building
//! anything, then the payload is decoded straight into its final buffer.

mod py;
mod scan;

use std::fmt;

use base64_simd::{AsOut, STANDARD};
use memchr::memchr;
use pyo3::prelude::*;

use crate::pcm::{f32_to_i16, f64_to_i16};

pub use py::AudioDelta;
pub use scan::DeltaKind;

/// Why an audio delta frame could not be read. Frames that are not audio deltas
/// at all are not errors (`parse_audio_delta` returns `Ok(None)` for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The frame's `type` names an audio delta but it is not well-formed JSON.
    Json { offset: usize },
    /// A required member is absent.
    MissingField(&'static str),
    /// A member has the wrong JSON type.
    FieldType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// An id string that cannot be represented (a lone UTF-16 surrogate escape).
    BadText(&'static str),
    /// An index does not fit in 64 bits.
    IntRange(&'static str),
    /// `delta` is not standard padded base64.
    Base64,
    /// The decoded payload has an odd number of bytes, so it is not PCM16.
    OddLength(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Json { offset } => {
                write!(f, "malformed JSON in audio delta frame at byte {offset}")
            }
            WireError::MissingField(field) => {
                write!(f, "audio delta frame has no \"{field}\" member")
            }
            WireError::FieldType {
                field,
                expected,
                found,
            } => write!(
                f,
                "audio delta member \"{field}\" must be {expected}, got {found}"
            ),
            WireError::BadText(field) => write!(
                f,
                "audio delta member \"{field}\" contains an unpaired surrogate escape"
            ),
            WireError::IntRange(field) => {
                write!(f, "audio delta member \"{field}\" is out of range")
            }
            WireError::Base64 => f.write_str("audio delta payload is not valid base64"),
            WireError::OddLength(n) => write!(
                f,
                "audio delta payload decodes to {n} bytes; PCM16 needs an even number"
            ),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for PyErr {
    fn from(err: WireError) -> PyErr {
        crate::errors::audio_err(err.to_string())
    }
}

/// An audio delta frame, owned and decoded: what the transport hands around
/// before (or instead of) making a Python object of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioDeltaParts {
    pub kind: DeltaKind,
    pub event_id: Option<String>,
    pub item_id: String,
    pub response_id: String,
    pub output_index: i64,
    pub content_index: i64,
    /// Decoded PCM16 little-endian bytes (even length).
    pub pcm: Vec<u8>,
}

const APPEND_PREFIX: &[u8] = br#"{"type":"input_audio_buffer.append","audio":""#;
const APPEND_SUFFIX: &[u8] = br#""}"#;

/// Samples converted per stack block: 3072 bytes, a multiple of 3 so every block
/// except the last encodes to whole base64 quanta without padding.
const BLOCK: usize = 1536;

/// Exact length of the append frame for `pcm_bytes` bytes of PCM16.
pub fn append_frame_len(pcm_bytes: usize) -> usize {
    APPEND_PREFIX.len() + STANDARD.encoded_length(pcm_bytes) + APPEND_SUFFIX.len()
}

/// Append the `input_audio_buffer.append` frame for `pcm` to `out`.
pub fn write_append_frame(pcm: &[i16], out: &mut Vec<u8>) {
    write_frame(Pcm::I16(pcm), out);
}

/// Append the `input_audio_buffer.append` frame for float samples, converted
/// to PCM16 with the crate rule (`crate::pcm::f32_to_i16`) on the way.
pub fn write_append_frame_f32(samples: &[f32], out: &mut Vec<u8>) {
    write_frame(Pcm::F32(samples), out);
}

/// Audio to put in an append frame.
#[derive(Clone, Copy)]
pub(crate) enum Pcm<'a> {
    /// PCM16 little-endian bytes (even length, checked by the caller).
    Le(&'a [u8]),
    I16(&'a [i16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Pcm<'_> {
    pub(crate) fn byte_len(self) -> usize {
        match self {
            Pcm::Le(b) => b.len(),
            Pcm::I16(s) => s.len() * 2,
            Pcm::F32(s) => s.len() * 2,
            Pcm::F64(s) => s.len() * 2,
        }
    }

    /// Feed the PCM16 bytes to `emit` in pieces whose lengths are multiples of
    /// 3 except the last, converting floats through a stack block.
    fn for_each_chunk(self, mut emit: impl FnMut(&[u8])) {
        let mut block = [0i16; BLOCK];
        match self {
            Pcm::Le(bytes) => emit(bytes),
            Pcm::I16(s) if cfg!(target_endian = "little") => emit(i16_bytes(s)),
            Pcm::I16(s) => {
                for chunk in s.chunks(BLOCK) {
                    let out = block.get_mut(..chunk.len()).unwrap_or_default();
                    out.iter_mut().zip(chunk).for_each(|(d, s)| *d = s.to_le());
                    emit(i16_bytes(out));
                }
            }
            Pcm::F32(s) => {
                for chunk in s.chunks(BLOCK) {
                    let out = block.get_mut(..chunk.len()).unwrap_or_default();
                    convert_f32(chunk, out);
                    out.iter_mut().for_each(|d| *d = d.to_le());
                    emit(i16_bytes(out));
                }
            }
            Pcm::F64(s) => {
                for chunk in s.chunks(BLOCK) {
                    let out = block.get_mut(..chunk.len()).unwrap_or_default();
                    convert_f64(chunk, out);
                    out.iter_mut().for_each(|d| *d = d.to_le());
                    emit(i16_bytes(out));
                }
            }
        }
    }
}

fn write_frame(pcm: Pcm<'_>, out: &mut Vec<u8>) {
    out.reserve(append_frame_len(pcm.byte_len()));
    out.extend_from_slice(APPEND_PREFIX);
    pcm.for_each_chunk(|bytes| STANDARD.encode_append(bytes, out));
    out.extend_from_slice(APPEND_SUFFIX);
}

/// Fill `dst`, which must be exactly `append_frame_len(pcm.byte_len())` long,
/// with the append frame (the Python path writes into a fresh `bytes` object).
pub(crate) fn fill_append_frame(pcm: Pcm<'_>, dst: &mut [u8]) {
    let (head, rest) = dst.split_at_mut(APPEND_PREFIX.len().min(dst.len()));
    head.copy_from_slice(APPEND_PREFIX.get(..head.len()).unwrap_or_default());
    let mut at = 0;
    pcm.for_each_chunk(|bytes| {
        let n = STANDARD.encoded_length(bytes.len());
        if let Some(slot) = rest.get_mut(at..at + n) {
            let _ = STANDARD.encode(bytes, slot.as_out());
        }
        at += n;
    });
    if let Some(tail) = rest.get_mut(at..) {
        let n = tail.len().min(APPEND_SUFFIX.len());
        tail.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(APPEND_SUFFIX.get(..n).unwrap_or_default());
    }
}

/// The native-endian bytes of `s` (little-endian on every platform we ship).
fn i16_bytes(s: &[i16]) -> &[u8] {
    // SAFETY: i16 has no padding and u8 has alignment 1, so any i16 slice is a
    // valid byte slice of twice the length covering the same memory.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Float to PCM16 with the crate rule. `round()` is a libm call per sample on
/// baseline x86-64 but a handful of vector instructions once SSE4.1 is allowed,
/// so the same loop is also compiled for AVX2 and picked at run time (5-10x).
pub(crate) fn convert_f32(src: &[f32], dst: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { convert_f32_avx2(src, dst) };
    }
    convert_f32_portable(src, dst);
}

#[inline(always)]
fn convert_f32_portable(src: &[f32], dst: &mut [i16]) {
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f32_to_i16(s));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_f32_avx2(src: &[f32], dst: &mut [i16]) {
    convert_f32_portable(src, dst);
}

pub(crate) fn convert_f64(src: &[f64], dst: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { convert_f64_avx2(src, dst) };
    }
    convert_f64_portable(src, dst);
}

#[inline(always)]
fn convert_f64_portable(src: &[f64], dst: &mut [i16]) {
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f64_to_i16(s));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_f64_avx2(src: &[f64], dst: &mut [i16]) {
    convert_f64_portable(src, dst);
}

/// Recognise and decode an audio delta frame. `Ok(None)` for every other frame
/// (other event types, non-JSON); an error for a malformed audio delta.
pub fn parse_audio_delta(frame: &[u8]) -> Result<Option<AudioDeltaParts>, WireError> {
    let Some(raw) = scan::scan(frame)? else {
        return Ok(None);
    };
    let pcm = decode_delta(raw.delta, |text, len| {
        let mut pcm = Vec::with_capacity(len);
        Ok::<_, WireError>(STANDARD.decode_append(text, &mut pcm).ok().map(|()| pcm))
    })?;
    Ok(Some(AudioDeltaParts {
        kind: raw.kind,
        event_id: raw.event_id.map(|t| text(t, "event_id")).transpose()?,
        item_id: text(raw.item_id, "item_id")?,
        response_id: text(raw.response_id, "response_id")?,
        output_index: raw.output_index,
        content_index: raw.content_index,
        pcm,
    }))
}

pub(crate) fn text(t: scan::Text<'_>, field: &'static str) -> Result<String, WireError> {
    let mut s = String::new();
    t.decode_into(&mut s)
        .map_err(|()| WireError::BadText(field))?;
    Ok(s)
}

/// Decode the base64 payload of a delta. `decode(text, len)` allocates `len`
/// bytes and decodes `text` into them, returning `None` if the text is invalid.
///
/// Servers send the payload unescaped, so we first decode the frame bytes
/// directly; only if that fails do we look for JSON escapes (`\/` is legal) and
/// retry on an unescaped copy, so the common path never scans the payload twice.
pub(crate) fn decode_delta<T, E: From<WireError>>(
    b64: &[u8],
    mut decode: impl FnMut(&[u8], usize) -> Result<Option<T>, E>,
) -> Result<T, E> {
    if let Ok(len) = STANDARD.decoded_length(b64) {
        if len % 2 == 0 {
            if let Some(v) = decode(b64, len)? {
                return Ok(v);
            }
        }
    }
    let unescaped;
    let text = if memchr(b'\\', b64).is_some() {
        let mut buf = Vec::with_capacity(b64.len());
        scan::unescape(b64, &mut buf).map_err(|()| WireError::Base64)?;
        unescaped = buf;
        &unescaped[..]
    } else {
        b64
    };
    let len = STANDARD
        .decoded_length(text)
        .map_err(|_| WireError::Base64)?;
    if len % 2 != 0 {
        return Err(WireError::OddLength(len).into());
    }
    decode(text, len)?.ok_or_else(|| WireError::Base64.into())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}

#[cfg(test)]
mod tests;
