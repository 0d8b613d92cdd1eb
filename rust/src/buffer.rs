//! Zero-copy access to audio handed over from Python.
//!
//! Every audio entry point accepts `bytes`, `bytearray`, `memoryview` or numpy
//! arrays. We take one `PyObject_GetBuffer` view (C-contiguous, with format),
//! read the element type from the buffer's format string, and lend the data out
//! as a typed slice without copying. Plain byte buffers are PCM16 little-endian.
//! Non-contiguous arrays (e.g. `stereo[:, 0]`) are made contiguous once through
//! `numpy.ascontiguousarray`, the only copy on this path. A view whose format is
//! not audio (e.g. int32) is rejected by `parse_format`, not copied.

use std::borrow::Cow;
use std::ffi::CStr;
use std::mem::MaybeUninit;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{ffi, intern};

use crate::errors::audio_err;

/// Native work on more bytes than this releases the GIL (about 3-5 µs of work).
pub const DETACH_THRESHOLD_BYTES: usize = 32 * 1024;

/// The element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Raw bytes (`bytes`, `bytearray`, uint8 memoryviews): PCM16 little-endian.
    Bytes,
    I16,
    F32,
    F64,
}

impl SampleFormat {
    fn item_size(self) -> usize {
        match self {
            SampleFormat::Bytes => 1,
            SampleFormat::I16 => 2,
            SampleFormat::F32 => 4,
            SampleFormat::F64 => 8,
        }
    }
}

/// Typed, borrowed samples. `I16` is borrowed unless a byte buffer was unaligned.
#[derive(Debug)]
pub enum Samples<'a> {
    I16(Cow<'a, [i16]>),
    F32(Cow<'a, [f32]>),
    F64(Cow<'a, [f64]>),
}

impl Samples<'_> {
    pub fn len(&self) -> usize {
        match self {
            Samples::I16(s) => s.len(),
            Samples::F32(s) => s.len(),
            Samples::F64(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A held buffer view of a Python object; released (with the GIL) on drop.
pub struct AudioBuffer {
    view: Box<ffi::Py_buffer>,
    format: SampleFormat,
}

// The view pins the exporter's memory until `PyBuffer_Release`; only the slices
// cross into `py.detach` closures, never the view itself.
impl AudioBuffer {
    /// Borrow `obj`'s memory. Raises `TypeError` for objects without the buffer
    /// protocol and `AudioFormatError` for element types that are not audio.
    pub fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        match Self::get_contiguous(obj) {
            Ok(buf) => Ok(buf),
            // SAFETY: PyObject_CheckBuffer only inspects the type's slots.
            Err(_) if unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } == 0 => {
                let tname = obj
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "object".into());
                Err(PyTypeError::new_err(format!(
                    "expected audio as bytes, bytearray, memoryview or a numpy array, got {tname}"
                )))
            }
            Err(err) => {
                // Strided exporters (numpy slices such as `stereo[:, 0]`) refuse a
                // C-contiguous view (numpy raises ValueError, others BufferError).
                let np = py.import(intern!(py, "numpy"))?;
                let contiguous = np
                    .call_method1(intern!(py, "ascontiguousarray"), (obj,))
                    .map_err(|_| err)?;
                Self::get_contiguous(&contiguous)
            }
        }
    }

    fn get_contiguous(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        let mut view: Box<MaybeUninit<ffi::Py_buffer>> = Box::new(MaybeUninit::uninit());
        let flags = ffi::PyBUF_C_CONTIGUOUS | ffi::PyBUF_FORMAT;
        // SAFETY: `view` is a valid, writable Py_buffer slot; on success CPython
        // fills it and we own exactly one reference until `PyBuffer_Release`.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc != 0 {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: PyObject_GetBuffer succeeded, so the view is initialised.
        let view: Box<ffi::Py_buffer> = unsafe { Box::from_raw(Box::into_raw(view).cast()) };
        let mut this = AudioBuffer {
            view,
            format: SampleFormat::Bytes,
        };
        this.format = this.parse_format()?;
        Ok(this)
    }

    fn parse_format(&self) -> PyResult<SampleFormat> {
        let raw: &[u8] = if self.view.format.is_null() {
            b"B"
        } else {
            // SAFETY: a non-null format is a NUL-terminated string owned by the view.
            unsafe { CStr::from_ptr(self.view.format) }.to_bytes()
        };
        let (order, code) = match raw.split_first() {
            Some((&c @ (b'@' | b'=' | b'<' | b'>' | b'!'), rest)) => (Some(c), rest),
            _ => (None, raw),
        };
        let format = match code {
            b"B" | b"b" | b"c" => SampleFormat::Bytes,
            b"h" => SampleFormat::I16,
            b"f" => SampleFormat::F32,
            b"d" => SampleFormat::F64,
            other => {
                return Err(audio_err(format!(
                "unsupported sample type {:?}: expected int16, float32, float64 or raw PCM16 bytes",
                String::from_utf8_lossy(other)
            )))
            }
        };
        let big_endian =
            matches!(order, Some(b'>' | b'!')) || (cfg!(target_endian = "big") && order.is_none());
        if big_endian && format != SampleFormat::Bytes {
            return Err(audio_err(
                "big-endian samples are not supported; use little-endian audio",
            ));
        }
        if self.view.itemsize as usize != format.item_size() {
            return Err(audio_err(format!(
                "sample type {:?} has item size {} bytes, expected {}",
                String::from_utf8_lossy(raw),
                self.view.itemsize,
                format.item_size()
            )));
        }
        Ok(format)
    }

    pub fn format(&self) -> SampleFormat {
        self.format
    }

    /// The raw bytes of the buffer.
    pub fn bytes(&self) -> &[u8] {
        let len = self.view.len.max(0) as usize;
        if len == 0 {
            return &[];
        }
        // SAFETY: the exporter guarantees `len` readable, C-contiguous bytes at
        // `buf` for as long as the view is held, which outlives `&self`.
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, len) }
    }

    /// Typed samples. Byte buffers are PCM16 and must have an even length.
    pub fn samples(&self) -> PyResult<Samples<'_>> {
        let bytes = self.bytes();
        Ok(match self.format {
            SampleFormat::Bytes | SampleFormat::I16 => Samples::I16(pcm16_from_bytes(bytes)?),
            SampleFormat::F32 => Samples::F32(cast_or_copy(bytes, f32::from_le_bytes)),
            SampleFormat::F64 => Samples::F64(cast_or_copy(bytes, f64::from_le_bytes)),
        })
    }

    /// PCM16 samples only: bytes or int16 arrays; anything else is an error.
    pub fn pcm16(&self) -> PyResult<Cow<'_, [i16]>> {
        match self.format {
            SampleFormat::Bytes | SampleFormat::I16 => pcm16_from_bytes(self.bytes()),
            other => Err(audio_err(format!(
                "expected PCM16 (bytes or an int16 array), got {other:?} samples; convert with to_pcm16() first"
            ))),
        }
    }
}

impl Drop for AudioBuffer {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
        // released exactly once, with the GIL held.
        Python::attach(|_| unsafe { ffi::PyBuffer_Release(&mut *self.view) });
    }
}

/// View little-endian PCM16 bytes as samples, copying only when unaligned.
pub fn pcm16_from_bytes(bytes: &[u8]) -> PyResult<Cow<'_, [i16]>> {
    if !bytes.len().is_multiple_of(2) {
        return Err(audio_err(format!(
            "PCM16 data must have an even number of bytes, got {}",
            bytes.len()
        )));
    }
    Ok(cast_or_copy(bytes, i16::from_le_bytes))
}

/// Reinterpret little-endian bytes as `T` without copying when they are aligned
/// (numpy and `bytes` always are); otherwise decode a copy. A ragged tail is
/// excluded by the callers' item-size checks.
pub fn cast_or_copy<T, const N: usize>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Cow<'_, [T]>
where
    T: Copy + 'static,
{
    debug_assert_eq!(std::mem::size_of::<T>(), N);
    if cfg!(target_endian = "little") {
        // SAFETY: T is a plain numeric type (i16/f32/f64) for which every bit
        // pattern is valid; align_to only yields the correctly aligned middle.
        let (head, body, tail) = unsafe { bytes.align_to::<T>() };
        if head.is_empty() && tail.is_empty() {
            return Cow::Borrowed(body);
        }
    }
    Cow::Owned(
        bytes
            .chunks_exact(N)
            .map(|c| from_le(c.try_into().unwrap_or([0; N])))
            .collect(),
    )
}

/// Build a `bytes` object of `len` bytes, filled by `fill` with the GIL released
/// when the work is large enough to matter.
pub fn new_bytes_with<'py, F>(py: Python<'py>, len: usize, fill: F) -> PyResult<Bound<'py, PyBytes>>
where
    F: FnOnce(&mut [u8]) + Send,
{
    PyBytes::new_with(py, len, |buf| {
        if len >= DETACH_THRESHOLD_BYTES {
            py.detach(|| fill(buf));
        } else {
            fill(buf);
        }
        Ok(())
    })
}

/// A `bytes` copy of `src` made with one allocation and one `memcpy`:
/// `new_bytes_with` zero-fills first, which costs as much again on large
/// buffers (PCM16 WAV decoding and int16 -> bytes are pure copies). Large
/// copies run with the GIL released.
pub fn bytes_copy<'py>(py: Python<'py>, src: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if src.len() < DETACH_THRESHOLD_BYTES {
        return Ok(PyBytes::new(py, src));
    }
    let len = ffi::Py_ssize_t::try_from(src.len()).map_err(|_| audio_err("buffer too large"))?;
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize returns a new,
    // unshared bytes object with `len` writable (uninitialised) bytes, or NULL
    // with an exception set, which `from_owned_ptr_or_err` turns into Err.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
            .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: `obj` is a bytes object, so this is its data pointer.
    let dst = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) } as usize;
    // The pointer crosses into the GIL-free closure as an address: nothing else
    // can see `obj` until we return it, and `src` is pinned by its buffer view.
    py.detach(|| {
        // SAFETY: `dst` points to `src.len()` bytes owned by `obj`, which
        // outlives the closure, and cannot overlap the caller's `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) }
    });
    Ok(obj)
}
