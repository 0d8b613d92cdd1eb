//! Python bindings for the wire fast paths: `append_frame`, `parse_audio_delta`
//! and the `AudioDelta` result class.
//!
//! Per-call overhead dominates at ~100 ms chunks (a few KB), so these avoid
//! every object they can: the frame/payload is written straight into the
//! returned `bytes`, ids stay Rust strings until someone asks for them, and no
//! numpy array is made unless `samples()` is called.

use base64_simd::{AsOut, STANDARD};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};

use super::{
    append_frame_len, decode_delta, fill_append_frame, scan, text, AudioDeltaParts, DeltaKind, Pcm,
};
use crate::buffer::{cast_or_copy, new_bytes_with, pcm16_from_bytes, AudioBuffer, SampleFormat};
use crate::errors::audio_err;
use crate::pcm::i16_to_f32;

/// One decoded `response.output_audio.delta` / `response.audio.delta` event.
///
/// Frozen: it is a value, and being immutable lets it cross threads freely.
/// The PCM lives either in a Python `bytes` (made while parsing in Python) or
/// in a Rust `Vec` (from the transport), turned into `bytes` once on demand.
#[pyclass(frozen, module = "fastvoice._fastvoice", name = "AudioDelta")]
pub struct AudioDelta {
    kind: DeltaKind,
    event_id: Option<String>,
    item_id: String,
    response_id: String,
    output_index: i64,
    content_index: i64,
    pcm_vec: Vec<u8>,
    pcm_obj: PyOnceLock<Py<PyBytes>>,
}

impl AudioDelta {
    /// Wrap a delta decoded in Rust (e.g. by the transport's reader task).
    pub fn from_parts(parts: AudioDeltaParts) -> AudioDelta {
        AudioDelta {
            kind: parts.kind,
            event_id: parts.event_id,
            item_id: parts.item_id,
            response_id: parts.response_id,
            output_index: parts.output_index,
            content_index: parts.content_index,
            pcm_vec: parts.pcm,
            pcm_obj: PyOnceLock::new(),
        }
    }

    /// The PCM16 little-endian payload.
    pub fn pcm_bytes<'a>(&'a self, py: Python<'_>) -> &'a [u8] {
        match self.pcm_obj.get(py) {
            Some(obj) => obj.as_bytes(py),
            None => &self.pcm_vec,
        }
    }
}

#[pymethods]
impl AudioDelta {
    /// `"response.output_audio.delta"` (GA) or `"response.audio.delta"` (beta).
    #[getter(r#type)]
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    #[getter]
    fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    #[getter]
    fn item_id(&self) -> &str {
        &self.item_id
    }

    #[getter]
    fn response_id(&self) -> &str {
        &self.response_id
    }

    #[getter]
    fn output_index(&self) -> i64 {
        self.output_index
    }

    #[getter]
    fn content_index(&self) -> i64 {
        self.content_index
    }

    /// The decoded PCM16 little-endian bytes (the same object on every access).
    #[getter]
    fn pcm(&self, py: Python<'_>) -> Py<PyBytes> {
        self.pcm_obj
            .get_or_init(py, || PyBytes::new(py, &self.pcm_vec).unbind())
            .clone_ref(py)
    }

    /// The samples as a new numpy array: int16 as sent, or float32 in [-1, 1).
    #[pyo3(signature = (dtype = "int16"))]
    fn samples<'py>(&self, py: Python<'py>, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
        let pcm = pcm16_from_bytes(self.pcm_bytes(py))?;
        match dtype {
            "int16" => Ok(PyArray1::from_slice(py, &pcm).into_any()),
            "float32" => {
                let arr = PyArray1::<f32>::zeros(py, pcm.len(), false);
                // SAFETY: `arr` was just created here, is contiguous and not yet
                // visible to any other code, so this is the only reference.
                let out = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
                out.iter_mut()
                    .zip(pcm.iter())
                    .for_each(|(d, &s)| *d = i16_to_f32(s));
                Ok(arr.into_any())
            }
            other => Err(audio_err(format!(
                "dtype must be \"int16\" or \"float32\", got {other:?}"
            ))),
        }
    }

    /// Number of samples.
    fn __len__(&self, py: Python<'_>) -> usize {
        self.pcm_bytes(py).len() / 2
    }

    /// Playing time of the payload in milliseconds at `sample_rate`.
    #[pyo3(signature = (sample_rate = 24000))]
    fn duration_ms(&self, py: Python<'_>, sample_rate: u32) -> PyResult<f64> {
        if sample_rate == 0 {
            return Err(audio_err("sample_rate must be positive"));
        }
        Ok((self.pcm_bytes(py).len() / 2) as f64 * 1000.0 / f64::from(sample_rate))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "AudioDelta(type={:?}, item_id={:?}, response_id={:?}, output_index={}, \
             content_index={}, event_id={}, samples={})",
            self.kind.as_str(),
            self.item_id,
            self.response_id,
            self.output_index,
            self.content_index,
            self.event_id
                .as_ref()
                .map_or_else(|| "None".to_owned(), |e| format!("{e:?}")),
            self.pcm_bytes(py).len() / 2,
        )
    }
}

/// Build the `input_audio_buffer.append` frame for `pcm16` (PCM16 bytes or an
/// int16 / float32 / float64 array; floats use the crate's PCM16 rule).
#[pyfunction]
fn append_frame<'py>(py: Python<'py>, pcm16: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    // Plain `bytes` is the common case: read it directly, no buffer view.
    if let Ok(b) = pcm16.cast_exact::<PyBytes>() {
        let bytes = pcm16_bytes(b.as_bytes())?;
        return frame_bytes(py, Pcm::Le(bytes));
    }
    let buf = AudioBuffer::get(pcm16)?;
    match buf.format() {
        SampleFormat::Bytes | SampleFormat::I16 => {
            frame_bytes(py, Pcm::Le(pcm16_bytes(buf.bytes())?))
        }
        SampleFormat::F32 => {
            frame_bytes(py, Pcm::F32(&cast_or_copy(buf.bytes(), f32::from_le_bytes)))
        }
        SampleFormat::F64 => {
            frame_bytes(py, Pcm::F64(&cast_or_copy(buf.bytes(), f64::from_le_bytes)))
        }
    }
}

fn pcm16_bytes(bytes: &[u8]) -> PyResult<&[u8]> {
    if !bytes.len().is_multiple_of(2) {
        return Err(audio_err(format!(
            "PCM16 data must have an even number of bytes, got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn frame_bytes<'py>(py: Python<'py>, pcm: Pcm<'_>) -> PyResult<Bound<'py, PyBytes>> {
    new_bytes_with(py, append_frame_len(pcm.byte_len()), |dst| {
        fill_append_frame(pcm, dst)
    })
}

/// Recognise a Realtime audio delta frame (`str` or `bytes`) and decode it;
/// `None` for any other frame.
#[pyfunction]
fn parse_audio_delta(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<Option<AudioDelta>> {
    if let Ok(s) = frame.cast::<PyString>() {
        // Strings with lone surrogates cannot be UTF-8 and are no audio delta.
        return match s.to_str() {
            Ok(text) => parse_frame(py, text.as_bytes()),
            Err(_) => Ok(None),
        };
    }
    if let Ok(b) = frame.cast::<PyBytes>() {
        return parse_frame(py, b.as_bytes());
    }
    let buf = AudioBuffer::get(frame).map_err(|_| {
        PyTypeError::new_err(format!(
            "parse_audio_delta expects a str or bytes frame, got {}",
            frame
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "object".into())
        ))
    })?;
    parse_frame(py, buf.bytes())
}

fn parse_frame(py: Python<'_>, frame: &[u8]) -> PyResult<Option<AudioDelta>> {
    let Some(raw) = scan::scan(frame)? else {
        return Ok(None);
    };
    let pcm = decode_delta(raw.delta, |b64, len| {
        let mut ok = false;
        let bytes = new_bytes_with(py, len, |dst| {
            ok = STANDARD.decode(b64, dst.as_out()).is_ok();
        })?;
        Ok::<_, PyErr>(ok.then_some(bytes))
    })?;
    let pcm_obj = PyOnceLock::new();
    let _ = pcm_obj.set(py, pcm.unbind());
    Ok(Some(AudioDelta {
        kind: raw.kind,
        event_id: raw.event_id.map(|t| text(t, "event_id")).transpose()?,
        item_id: text(raw.item_id, "item_id")?,
        response_id: text(raw.response_id, "response_id")?,
        output_index: raw.output_index,
        content_index: raw.content_index,
        pcm_vec: Vec::new(),
        pcm_obj,
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AudioDelta>()?;
    m.add_function(wrap_pyfunction!(append_frame, m)?)?;
    m.add_function(wrap_pyfunction!(parse_audio_delta, m)?)?;
    Ok(())
}
