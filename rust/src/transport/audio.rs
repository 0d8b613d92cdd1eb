//! The transport's only contact with the Realtime wire format ([`crate::wire`]).
//!
//! `send_audio` and `decode_audio=True` go through these functions so the
//! transport does not depend on how the wire module lays out its types.

use pyo3::prelude::*;

use crate::buffer::Samples;
use crate::wire::{self, AudioDelta, AudioDeltaParts};

/// A decoded audio-delta frame, still free of Python objects so the tokio
/// task can build it without the GIL.
pub type AudioParts = AudioDeltaParts;

/// Exact size of the append frame for `samples` (for the size check and the
/// single allocation).
pub fn append_frame_len(samples: usize) -> usize {
    wire::append_frame_len(samples * 2)
}

/// Append the exact bytes of an `input_audio_buffer.append` frame, converting
/// float samples with the crate's PCM16 rule.
pub fn write_append_frame(samples: &Samples<'_>, out: &mut Vec<u8>) {
    match samples {
        Samples::I16(pcm) => wire::write_append_frame(pcm, out),
        Samples::F32(x) => wire::write_append_frame_f32(x, out),
        Samples::F64(x) => {
            let pcm: Vec<i16> = x.iter().map(|&v| crate::pcm::f64_to_i16(v)).collect();
            wire::write_append_frame(&pcm, out);
        }
    }
}

/// Decode `frame` if it is an audio delta. Any other frame, and a malformed
/// delta, gives `None`: it is then delivered as the text it is, so nothing is
/// lost and the caller sees exactly what the server sent.
pub fn parse(frame: &[u8]) -> Option<AudioParts> {
    wire::parse_audio_delta(frame).ok().flatten()
}

/// Build the Python `fastvoice.audio.AudioDelta` for decoded parts.
pub fn into_py(py: Python<'_>, parts: AudioParts) -> PyResult<Bound<'_, PyAny>> {
    Ok(Bound::new(py, AudioDelta::from_parts(parts))?.into_any())
}
