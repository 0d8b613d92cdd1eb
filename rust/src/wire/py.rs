//! Python bindings for the wire fast paths: `append_frame`, `parse_audio_delta`
//! and the `AudioDelta` result class.
//!
//! Per-call overhead dominates at ~100 ms chunks (a few KB), so these avoid
//! every object they can: the frame/payload is written straight into the
//! returned `bytes`, ids stay Rust strings until someone asks for them, and no
//! numpy array is made unless `samples()` is called.

use std::mem::MaybeUninit;

use base64_simd::{Out, STANDARD};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};

use super::{
    append_frame_len, decode_delta, fill_append_frame, owned_text, scan, text::Text,
    AudioDeltaParts, DeltaKind, Pcm, WireError,
};
use crate::buffer::{
    cast_or_copy, pcm16_from_bytes, AudioBuffer, SampleFormat, DETACH_THRESHOLD_BYTES,
};
use crate::errors::audio_err;
use crate::pcm::i16_to_f32;

/// One decoded `response.output_audio.delta` / `response.audio.delta` event.
///
/// Frozen: it is a value, and being immutable lets it cross threads freely.
#[pyclass(frozen, module = "fastvoice._fastvoice", name = "AudioDelta")]
pub struct AudioDelta {
    kind: DeltaKind,
    event_id: Option<Id>,
    item_id: Id,
    response_id: Id,
    output_index: i64,
    content_index: i64,
    pcm: Payload,
}

/// Bytes an id keeps inline; Realtime ids are about 25 bytes.
const INLINE_ID: usize = 46;

/// An id string, inline when short so that parsing a delta allocates nothing
/// beyond the Python objects it returns.
enum Id {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Heap(Box<str>),
}

impl Id {
    fn parse(t: Text<'_>, field: &'static str) -> Result<Id, WireError> {
        if !t.escaped && t.raw.len() <= INLINE_ID && std::str::from_utf8(t.raw).is_ok() {
            let mut bytes = [0; INLINE_ID];
            bytes
                .get_mut(..t.raw.len())
                .unwrap_or_default()
                .copy_from_slice(t.raw);
            return Ok(Id::Inline {
                len: t.raw.len() as u8,
                bytes,
            });
        }
        Ok(Id::Heap(owned_text(t, field)?.into_boxed_str()))
    }

    fn as_str(&self) -> &str {
        match self {
            // Only valid UTF-8 is ever stored (checked in `parse`).
            Id::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Id::Heap(s) => s,
        }
    }
}

impl From<String> for Id {
    fn from(s: String) -> Id {
        Id::Heap(s.into_boxed_str())
    }
}

/// Where the payload lives.
enum Payload {
    /// Decoded straight into a `bytes` object (parsing from Python).
    Bytes(Py<PyBytes>),
    /// Decoded by Rust code without the GIL; the `bytes` is made on first use.
    Vec(Vec<u8>, PyOnceLock<Py<PyBytes>>),
}

impl AudioDelta {
    /// Wrap a delta decoded in Rust (e.g. by the transport's reader task).
    pub fn from_parts(parts: AudioDeltaParts) -> AudioDelta {
        AudioDelta {
            kind: parts.kind,
            event_id: parts.event_id.map(Id::from),
            item_id: Id::from(parts.item_id),
            response_id: Id::from(parts.response_id),
            output_index: parts.output_index,
            content_index: parts.content_index,
            pcm: Payload::Vec(parts.pcm, PyOnceLock::new()),
        }
    }

    /// The PCM16 little-endian payload.
    pub fn pcm_bytes<'a>(&'a self, py: Python<'_>) -> &'a [u8] {
        match &self.pcm {
            Payload::Bytes(obj) => obj.as_bytes(py),
            Payload::Vec(vec, _) => vec,
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
        self.event_id.as_ref().map(Id::as_str)
    }

    #[getter]
    fn item_id(&self) -> &str {
        self.item_id.as_str()
    }

    #[getter]
    fn response_id(&self) -> &str {
        self.response_id.as_str()
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
        match &self.pcm {
            Payload::Bytes(obj) => obj.clone_ref(py),
            Payload::Vec(vec, cell) => cell
                .get_or_init(py, || PyBytes::new(py, vec).unbind())
                .clone_ref(py),
        }
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
            self.item_id.as_str(),
            self.response_id.as_str(),
            self.output_index,
            self.content_index,
            self.event_id
                .as_ref()
                .map_or_else(|| "None".to_owned(), |e| format!("{:?}", e.as_str())),
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
    let len = append_frame_len(pcm.byte_len());
    new_bytes_uninit(py, len, |dst| fill_append_frame(pcm, dst) == len)?
        .ok_or_else(|| audio_err("internal error: append frame length mismatch"))
}

/// A new `bytes` of `len` bytes written by `fill` straight into the object,
/// skipping the zero-fill `PyBytes::new_with` does (about a fifth of the cost
/// of a 100 ms frame). `fill` must initialise all of it and return true, or
/// return false, in which case the object is discarded unseen. The GIL is
/// released for large fills.
fn new_bytes_uninit<'py, F>(
    py: Python<'py>,
    len: usize,
    fill: F,
) -> PyResult<Option<Bound<'py, PyBytes>>>
where
    F: FnOnce(&mut [MaybeUninit<u8>]) -> bool + Send,
{
    let size = ffi::Py_ssize_t::try_from(len).map_err(|_| audio_err("frame too large"))?;
    // SAFETY: a NULL source asks CPython for an uninitialised bytes object of
    // `len` bytes that we own; nothing else can see it before we return it.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), size))?
            .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: the buffer of a bytes object is `len` writable bytes that live as
    // long as `obj`; viewing them as `MaybeUninit` makes no claim about contents.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(obj.as_ptr()).cast::<MaybeUninit<u8>>(),
            len,
        )
    };
    let ok = if len >= DETACH_THRESHOLD_BYTES {
        py.detach(|| fill(buf))
    } else {
        fill(buf)
    };
    Ok(ok.then_some(obj))
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
        new_bytes_uninit(py, len, |dst| {
            STANDARD
                .decode(b64, Out::from_uninit_slice(dst))
                .is_ok_and(|out| out.len() == len)
        })
    })?;
    Ok(Some(AudioDelta {
        kind: raw.kind,
        event_id: raw.event_id.map(|t| Id::parse(t, "event_id")).transpose()?,
        item_id: Id::parse(raw.item_id, "item_id")?,
        response_id: Id::parse(raw.response_id, "response_id")?,
        output_index: raw.output_index,
        content_index: raw.content_index,
        pcm: Payload::Bytes(pcm.unbind()),
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AudioDelta>()?;
    m.add_function(wrap_pyfunction!(append_frame, m)?)?;
    m.add_function(wrap_pyfunction!(parse_audio_delta, m)?)?;
    Ok(())
}
