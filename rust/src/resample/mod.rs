//! Streaming sample-rate conversion on top of rubato.
//!
//! [`StreamResampler`] (pure Rust, used by `cargo test`/criterion) owns one rubato
//! resampler per stream plus preallocated staging buffers; [`plan`] picks the engine
//! and knows its exact delay. This module holds the thin Python layer:
//! `fastvoice._fastvoice.Resampler` and `fastvoice._fastvoice.resample`.
//!
//! The wrapper does one buffer lookup and builds one output array per call. It
//! releases the GIL only for chunks big enough to pay for it, because a 20 ms chunk
//! resamples in a few microseconds, about the cost of the detach round trip.

pub(crate) mod plan;
pub(crate) mod stream;
#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, TryLockError};

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

pub use plan::{Quality, ResampleError, MAX_CHANNELS, MAX_RATE, MIN_RATE};
pub use stream::{resample_clip, Input, StreamResampler};

use crate::buffer::{AudioBuffer, Samples, DETACH_THRESHOLD_BYTES};
use crate::errors::audio_err;
use crate::pcm::f32_to_i16;

impl From<ResampleError> for PyErr {
    fn from(e: ResampleError) -> PyErr {
        audio_err(e.0)
    }
}

/// Sample type of a stream; raw bytes are PCM16 and count as int16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    I16,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::I16 => "int16",
        }
    }
}

fn parse_quality(name: &str) -> PyResult<Quality> {
    Quality::parse(name).ok_or_else(|| {
        audio_err(format!(
            "unknown quality {name:?}: expected \"high\" or \"low_latency\""
        ))
    })
}

/// Borrow the typed samples of a Python chunk; float64 is refused, not converted,
/// so that a stream never silently changes precision or allocates a copy.
fn input_of<'a>(samples: &'a Samples<'a>) -> PyResult<(Input<'a>, Dtype)> {
    match samples {
        Samples::F32(s) => Ok((Input::F32(s), Dtype::F32)),
        Samples::I16(s) => Ok((Input::I16(s), Dtype::I16)),
        Samples::F64(_) => Err(audio_err(
            "float64 audio is not accepted: pass float32 (x.astype(numpy.float32)) or int16",
        )),
    }
}

/// Channels implied by a numpy array's shape: `None` for 1-D data (interleaved),
/// `Some(n)` for a `(frames, n)` array. Other shapes are errors.
fn frame_layout(obj: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    match obj.cast::<PyUntypedArray>() {
        Ok(arr) => match arr.ndim() {
            1 => Ok(None),
            2 => Ok(Some(arr.shape()[1])),
            n => Err(audio_err(format!(
                "expected a 1-D (interleaved) or 2-D (frames, channels) array, got {n} dimensions"
            ))),
        },
        Err(_) => Ok(None),
    }
}

/// Build the returned array from interleaved float32 frames, in the stream's dtype
/// and the caller's layout (1-D interleaved or 2-D `(frames, channels)`).
fn to_numpy<'py>(
    py: Python<'py>,
    data: &[f32],
    dtype: Dtype,
    channels: usize,
    two_d: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let big = data.len() * 4 >= DETACH_THRESHOLD_BYTES;
    let frames = data.len() / channels;
    match (dtype, two_d) {
        (Dtype::F32, false) => Ok(PyArray1::from_slice(py, data).into_any()),
        (Dtype::F32, true) => {
            // SAFETY: the array is freshly created, C-contiguous and fully written below.
            let arr = unsafe { PyArray2::<f32>::new(py, [frames, channels], false) };
            let dst = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
            dst.copy_from_slice(data);
            Ok(arr.into_any())
        }
        (Dtype::I16, false) => {
            // SAFETY: as above.
            let arr = unsafe { PyArray1::<i16>::new(py, [data.len()], false) };
            let dst = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
            fill_i16(py, dst, data, big);
            Ok(arr.into_any())
        }
        (Dtype::I16, true) => {
            // SAFETY: as above.
            let arr = unsafe { PyArray2::<i16>::new(py, [frames, channels], false) };
            let dst = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
            fill_i16(py, dst, data, big);
            Ok(arr.into_any())
        }
    }
}

/// Convert float32 output to PCM16 by the pcm.rs rule, off the GIL when large.
fn fill_i16(py: Python<'_>, dst: &mut [i16], src: &[f32], big: bool) {
    fn convert(dst: &mut [i16], src: &[f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f32_to_i16(s);
        }
    }
    if big {
        py.detach(|| convert(dst, src));
    } else {
        convert(dst, src);
    }
}

struct State {
    core: StreamResampler,
    /// Sample type fixed by the first chunk of the current stream.
    dtype: Option<Dtype>,
    /// Whether the first chunk was a 2-D array (so `flush` answers in kind).
    two_d: bool,
    /// Output staging reused across calls; only grows when a chunk is larger
    /// than any before it.
    out: Vec<f32>,
}

/// Keep memory bounded after a one-off huge chunk.
const KEEP_OUTPUT_CAPACITY: usize = 1 << 16;

/// Streaming sample-rate converter (see the type stubs for the full contract).
#[pyclass(module = "fastvoice._fastvoice", name = "Resampler", frozen)]
pub struct PyResampler {
    state: Mutex<State>,
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    quality: Quality,
    delay_frames: f64,
}

impl PyResampler {
    fn lock(&self) -> PyResult<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                g.core.reset();
                g.dtype = None;
                Ok(g)
            }
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "this Resampler is being used by another thread; use one Resampler per stream",
            )),
        }
    }
}

#[pymethods]
impl PyResampler {
    #[new]
    #[pyo3(signature = (in_rate, out_rate, channels = 1, quality = "high"))]
    fn new(in_rate: i64, out_rate: i64, channels: i64, quality: &str) -> PyResult<Self> {
        let quality = parse_quality(quality)?;
        let core = StreamResampler::new(in_rate, out_rate, channels, quality)?;
        Ok(PyResampler {
            in_rate: core.in_rate(),
            out_rate: core.out_rate(),
            channels: core.channels(),
            quality,
            delay_frames: core.delay_frames(),
            state: Mutex::new(State {
                core,
                dtype: None,
                two_d: false,
                out: Vec::new(),
            }),
        })
    }

    fn process<'py>(
        &self,
        py: Python<'py>,
        chunk: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let buf = AudioBuffer::get(chunk)?;
        let samples = buf.samples()?;
        let (input, dtype) = input_of(&samples)?;
        let layout = frame_layout(chunk)?;
        if let Some(n) = layout {
            if n != self.channels {
                return Err(audio_err(format!(
                    "2-D chunk has {n} columns but the Resampler has {} channels",
                    self.channels
                )));
            }
        }
        if !input.len().is_multiple_of(self.channels) {
            return Err(audio_err(format!(
                "chunk of {} samples is not a whole number of {}-channel frames",
                input.len(),
                self.channels
            )));
        }
        let mut guard = self.lock()?;
        let st = &mut *guard;
        match st.dtype {
            None => {
                st.dtype = Some(dtype);
                st.two_d = layout.is_some();
            }
            Some(d) if d != dtype => {
                return Err(audio_err(format!(
                "this stream carries {} samples, got {}; call reset() or flush() before switching",
                d.name(),
                dtype.name()
            )))
            }
            Some(_) => {}
        }
        st.out.clear();
        if buf.bytes().len() >= DETACH_THRESHOLD_BYTES {
            py.detach(|| st.core.process(input, &mut st.out))?;
        } else {
            st.core.process(input, &mut st.out)?;
        }
        let arr = to_numpy(py, &st.out, dtype, self.channels, layout.is_some())?;
        if st.out.capacity() > KEEP_OUTPUT_CAPACITY {
            st.out = Vec::new();
        }
        Ok(arr)
    }

    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut guard = self.lock()?;
        let st = &mut *guard;
        st.out.clear();
        st.core.flush(&mut st.out)?;
        let arr = to_numpy(
            py,
            &st.out,
            st.dtype.unwrap_or(Dtype::F32),
            self.channels,
            st.two_d,
        )?;
        st.dtype = None;
        st.two_d = false;
        Ok(arr)
    }

    fn reset(&self) -> PyResult<()> {
        let mut st = self.lock()?;
        st.core.reset();
        st.dtype = None;
        st.two_d = false;
        Ok(())
    }

    #[getter]
    fn in_rate(&self) -> u32 {
        self.in_rate
    }

    #[getter]
    fn out_rate(&self) -> u32 {
        self.out_rate
    }

    #[getter]
    fn channels(&self) -> usize {
        self.channels
    }

    #[getter]
    fn quality(&self) -> &'static str {
        self.quality.as_str()
    }

    #[getter]
    fn delay_ms(&self) -> f64 {
        self.delay_frames * 1000.0 / self.out_rate as f64
    }

    fn __repr__(&self) -> String {
        format!(
            "Resampler(in_rate={}, out_rate={}, channels={}, quality='{}')",
            self.in_rate,
            self.out_rate,
            self.channels,
            self.quality.as_str()
        )
    }
}

/// Resample a whole clip, time-aligned with the input (the delay is removed).
#[pyfunction]
#[pyo3(signature = (x, in_rate, out_rate, quality = "high"))]
fn resample<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    in_rate: i64,
    out_rate: i64,
    quality: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let quality = parse_quality(quality)?;
    let buf = AudioBuffer::get(x)?;
    let samples = buf.samples()?;
    let (input, dtype) = input_of(&samples)?;
    let layout = frame_layout(x)?;
    let channels = layout.unwrap_or(1);
    if channels == 0 {
        return Err(audio_err("2-D clip has 0 channels"));
    }
    let out = if buf.bytes().len() >= DETACH_THRESHOLD_BYTES {
        py.detach(|| resample_clip(input, in_rate, out_rate, channels as i64, quality))?
    } else {
        resample_clip(input, in_rate, out_rate, channels as i64, quality)?
    };
    to_numpy(py, &out, dtype, channels, layout.is_some())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyResampler>()?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    Ok(())
}
