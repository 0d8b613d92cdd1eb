//! Realtime wire fast paths: base64 audio inside JSON text frames.
//!
//! Contract used by the transport (`crate::transport`), to be implemented here:
//! - `pub fn write_append_frame(pcm: &[i16], out: &mut Vec<u8>)` appends the exact
//!   bytes of `{"type":"input_audio_buffer.append","audio":"<base64 of pcm LE>"}`.
//! - `pub fn parse_audio_delta(frame: &[u8]) -> Result<Option<AudioDeltaParts>, WireError>`
//!   recognises `response.output_audio.delta` / `response.audio.delta` frames.
//! - `AudioDelta` (the pyclass) has `AudioDelta::from_parts(parts) -> AudioDelta`.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
