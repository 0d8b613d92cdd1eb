//! Realtime wire fast paths: base64 audio inside JSON text frames.
//!
//! The OpenAI Realtime API moves audio as base64 strings inside JSON text frames,
//! roughly 25 frames per second each way. Doing that with a JSON library means
//! an extra copy of the base64 text and a Python dict per frame; here both
//! directions go straight between PCM and frame bytes in one pass each.
//!
//! Contract used by the transport (`crate::transport`):
//! - `pub fn write_append_frame(pcm: &[i16], out: &mut Vec<u8>)` appends the exact
//!   bytes of `{"type":"input_audio_buffer.append","audio":"<base64 of pcm LE>"}`
//!   (`write_append_frame_f32` converts floats on the way; `append_frame_len`
//!   gives the exact size for pre-allocation).
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
mod text;

use std::fmt;
use std::mem::MaybeUninit;

use base64_simd::{Out, STANDARD};
use memchr::memchr;
use pyo3::prelude::*;

use crate::pcm::{f32_to_i16_fast, f64_to_i16};

pub use py::AudioDelta;
pub use scan::DeltaKind;
pub(crate) use scan::{scan as scan_delta, RawDelta};
pub(crate) use text::Text;

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
        match self {
            Pcm::Le(bytes) => emit(bytes),
            Pcm::I16(s) if cfg!(target_endian = "little") => emit(i16_bytes(s)),
            Pcm::I16(s) => in_blocks(s, |src, dst| dst.copy_from_slice(src), emit),
            Pcm::F32(s) => in_blocks(s, convert_f32, emit),
            Pcm::F64(s) => in_blocks(s, convert_f64, emit),
        }
    }
}

/// Convert `src` to PCM16 a stack block at a time and emit each block's
/// little-endian bytes (no heap buffer, nothing allocated per call).
fn in_blocks<T>(src: &[T], convert: impl Fn(&[T], &mut [i16]), mut emit: impl FnMut(&[u8])) {
    let mut block = [0i16; BLOCK];
    for chunk in src.chunks(BLOCK) {
        let out = block.get_mut(..chunk.len()).unwrap_or_default();
        convert(chunk, out);
        out.iter_mut().for_each(|d| *d = d.to_le());
        emit(i16_bytes(out));
    }
}

fn write_frame(pcm: Pcm<'_>, out: &mut Vec<u8>) {
    out.reserve(append_frame_len(pcm.byte_len()));
    out.extend_from_slice(APPEND_PREFIX);
    pcm.for_each_chunk(|bytes| STANDARD.encode_append(bytes, out));
    out.extend_from_slice(APPEND_SUFFIX);
}

/// Write the append frame into `dst` (normally exactly
/// `append_frame_len(pcm.byte_len())` long, uninitialised: the Python path
/// writes straight into a fresh `bytes` object). Returns the bytes written,
/// which equals `dst.len()` when the length was right.
pub(crate) fn fill_append_frame(pcm: Pcm<'_>, dst: &mut [MaybeUninit<u8>]) -> usize {
    let mut at = put(dst, 0, APPEND_PREFIX);
    pcm.for_each_chunk(|bytes| {
        let n = STANDARD.encoded_length(bytes.len());
        if let Some(slot) = dst.get_mut(at..at + n) {
            let _ = STANDARD.encode(bytes, Out::from_uninit_slice(slot));
            at += n;
        }
    });
    put(dst, at, APPEND_SUFFIX)
}

/// Copy `src` into `dst` at `at` if it fits; returns the new end.
fn put(dst: &mut [MaybeUninit<u8>], at: usize, src: &[u8]) -> usize {
    match dst.get_mut(at..at + src.len()) {
        Some(slot) => {
            slot.iter_mut().zip(src).for_each(|(d, &s)| {
                d.write(s);
            });
            at + src.len()
        }
        None => at,
    }
}

/// The native-endian bytes of `s` (little-endian on every platform we ship).
fn i16_bytes(s: &[i16]) -> &[u8] {
    // SAFETY: i16 has no padding and u8 has alignment 1, so any i16 slice is a
    // valid byte slice of twice the length covering the same memory.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Float to PCM16 with the crate rule, via `pcm::f32_to_i16_fast` (equal to
/// `pcm::f32_to_i16` for every input, and free of the libm `round` call and
/// saturating cast that keep the plain rule from vectorising). The loop is also
/// compiled for AVX2 and picked at run time, for twice the vector width.
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
        .for_each(|(d, &s)| *d = f32_to_i16_fast(s));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_f32_avx2(src: &[f32], dst: &mut [i16]) {
    convert_f32_portable(src, dst);
}

/// Double to PCM16 with the crate rule. `round()` is a libm call per sample on
/// baseline x86-64 but a few vector instructions once SSE4.1 is allowed, so the
/// loop is also compiled for AVX2 and picked at run time (about 2.5x).
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
        event_id: raw
            .event_id
            .map(|t| owned_text(t, "event_id"))
            .transpose()?,
        item_id: owned_text(raw.item_id, "item_id")?,
        response_id: owned_text(raw.response_id, "response_id")?,
        output_index: raw.output_index,
        content_index: raw.content_index,
        pcm,
    }))
}

/// Append the `input_audio_buffer.append` frame for already-encoded audio bytes
/// (G.711 codes; PCM16 callers use [`write_append_frame`]).
pub(crate) fn write_append_frame_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_frame(Pcm::Le(bytes), out);
}

/// Decode a delta's base64 payload into `out` (cleared first), any length.
/// `tmp` holds the unescaped text in the rare frame that uses JSON escapes;
/// both buffers are reused, so steady-state decoding allocates nothing.
pub(crate) fn decode_payload_into(
    b64: &[u8],
    out: &mut Vec<u8>,
    tmp: &mut Vec<u8>,
) -> Result<(), WireError> {
    out.clear();
    if STANDARD.decode_append(b64, &mut *out).is_ok() {
        return Ok(());
    }
    out.clear();
    let text = without_escapes(b64, tmp)?;
    STANDARD
        .decode_append(text, out)
        .map_err(|_| WireError::Base64)
}

/// `b64` with its JSON escapes undone (`\/` is legal in a JSON string);
/// `buf` holds the result only when there are escapes.
fn without_escapes<'a>(b64: &'a [u8], buf: &'a mut Vec<u8>) -> Result<&'a [u8], WireError> {
    if memchr(b'\\', b64).is_none() {
        return Ok(b64);
    }
    buf.clear();
    text::unescape(b64, buf).map_err(|()| WireError::Base64)?;
    Ok(&buf[..])
}

pub(crate) fn owned_text(t: text::Text<'_>, field: &'static str) -> Result<String, WireError> {
    t.to_owned_string().map_err(|()| WireError::BadText(field))
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
    let mut buf = Vec::new();
    let text = without_escapes(b64, &mut buf)?;
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
