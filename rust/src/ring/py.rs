//! The `RingBuffer` Python class over [`SampleRing`].
//!
//! Chunks of at least `DETACH_THRESHOLD_BYTES` are copied with the GIL released,
//! so a producer thread and a consumer thread really run in parallel on big
//! blocks; small chunks keep the GIL because releasing it costs more than the copy.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::PySlice;

use super::{Full, Overflow, Sample, SampleRing};
use crate::buffer::{AudioBuffer, Samples, DETACH_THRESHOLD_BYTES};
use crate::errors::audio_err;

/// Largest accepted capacity (about 3 hours at 24 kHz); guards against typos
/// turning into a multi-gigabyte allocation.
const MAX_CAPACITY: usize = 1 << 28;

enum Store {
    I16(SampleRing<i16>),
    F32(SampleRing<f32>),
}

/// Run `$body` with `$r` bound to the typed ring.
macro_rules! with_ring {
    ($store:expr, $r:ident => $body:expr) => {
        match $store {
            Store::I16($r) => $body,
            Store::F32($r) => $body,
        }
    };
}

/// A thread-safe SPSC ring buffer of int16 or float32 samples.
#[pyclass(frozen, module = "fastvoice._fastvoice", name = "RingBuffer")]
pub struct RingBuffer {
    store: Store,
}

/// Rust-side access for native producers and consumers (the transport's audio
/// sink and pump), converting to and from PCM16 with the crate rule.
impl RingBuffer {
    /// Store `samples` under the ring's overflow policy; returns how many were
    /// stored (0 when the policy refused them all).
    pub(crate) fn push_i16(&self, samples: &[i16]) -> usize {
        with_ring!(&self.store, r => r.write(samples).unwrap_or(0))
    }

    /// Move up to `out.len()` samples into `out`; returns how many.
    pub(crate) fn pop_i16(&self, out: &mut [i16]) -> usize {
        with_ring!(&self.store, r => r.read_into(out))
    }

    pub(crate) fn available_samples(&self) -> usize {
        with_ring!(&self.store, r => r.available())
    }

    pub(crate) fn consumed_samples(&self) -> u64 {
        with_ring!(&self.store, r => r.consumed())
    }

    /// See [`SampleRing::read_position_of_next`].
    pub(crate) fn read_position_of_next(&self) -> u64 {
        with_ring!(&self.store, r => r.read_position_of_next())
    }

    pub(crate) fn discard_all(&self) -> usize {
        with_ring!(&self.store, r => r.clear())
    }

    fn item_size(&self) -> usize {
        match self.store {
            Store::I16(_) => 2,
            Store::F32(_) => 4,
        }
    }
}

/// A writable destination borrowed from a Python buffer, movable into a
/// GIL-released closure.
struct RawOut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: the pointer targets memory pinned by a buffer view that outlives the
// closure it is moved into; only that closure touches it.
unsafe impl<T: Send> Send for RawOut<T> {}

impl<T> RawOut<T> {
    /// # Safety
    /// The memory must be valid, writable and not otherwise borrowed for the
    /// lifetime of the returned slice.
    unsafe fn slice<'a>(&self) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.ptr, self.len)
    }
}

fn write_samples<T: Sample>(ring: &SampleRing<T>, samples: &Samples<'_>) -> Result<usize, Full> {
    match samples {
        Samples::I16(s) => ring.write(s),
        Samples::F32(s) => ring.write(s),
        Samples::F64(s) => ring.write(s),
    }
}

/// Read from `ring` into the raw destination, then optionally zero the rest.
fn read_raw<T: Sample, U: Sample>(ring: &SampleRing<T>, out: RawOut<U>, pad: bool) -> usize {
    // SAFETY: see `RawOut`; the caller holds the buffer view.
    let dst = unsafe { out.slice() };
    let n = ring.read_into(dst);
    if pad {
        dst.iter_mut().skip(n).for_each(|d| *d = U::default());
    }
    n
}

#[pymethods]
impl RingBuffer {
    #[new]
    #[pyo3(signature = (capacity, dtype = "int16", overflow = "drop_oldest"))]
    fn new(capacity: i64, dtype: &str, overflow: &str) -> PyResult<Self> {
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&c| (1..=MAX_CAPACITY).contains(&c))
            .ok_or_else(|| {
                audio_err(format!(
                    "capacity must be between 1 and {MAX_CAPACITY} samples, got {capacity}"
                ))
            })?;
        let policy = match overflow {
            "drop_oldest" => Overflow::DropOldest,
            "drop_newest" => Overflow::DropNewest,
            "error" => Overflow::Error,
            other => {
                return Err(audio_err(format!(
                    "overflow must be \"drop_oldest\", \"drop_newest\" or \"error\", got {other:?}"
                )))
            }
        };
        let store = match dtype {
            "int16" => Store::I16(SampleRing::new(capacity, policy)),
            "float32" => Store::F32(SampleRing::new(capacity, policy)),
            other => {
                return Err(audio_err(format!(
                    "dtype must be \"int16\" or \"float32\", got {other:?}"
                )))
            }
        };
        Ok(RingBuffer { store })
    }

    /// Append samples (PCM16 bytes or an int16/float32/float64 array, converted
    /// to the ring's dtype); returns how many were stored.
    fn write(&self, py: Python<'_>, samples: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = AudioBuffer::get(samples)?;
        let samples = buf.samples()?;
        let big = samples.len() * self.item_size() >= DETACH_THRESHOLD_BYTES;
        let store = &self.store;
        let result = if big {
            py.detach(|| with_ring!(store, r => write_samples(r, &samples)))
        } else {
            with_ring!(store, r => write_samples(r, &samples))
        };
        result.map_err(|full| {
            PyOverflowError::new_err(format!(
                "ring buffer full: {} samples do not fit in {} free slots",
                full.needed, full.free
            ))
        })
    }

    /// Take up to `n` samples (all available if `n` is None) as a new array of
    /// the ring's dtype.
    #[pyo3(signature = (n = None))]
    fn read<'py>(&self, py: Python<'py>, n: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let available = self.available();
        let want = match n {
            None => available,
            Some(n) => usize::try_from(n)
                .map_err(|_| audio_err(format!("n must not be negative, got {n}")))?
                .min(available),
        };
        let big = want * self.item_size() >= DETACH_THRESHOLD_BYTES;
        with_ring!(&self.store, r => read_array(py, r, want, big))
    }

    /// Fill the start of `out` (a writable, C-contiguous int16 or float32 array,
    /// any shape) with up to `out.size` samples; returns how many. With
    /// `pad=True` the rest of `out` is zeroed (silence for playback callbacks).
    #[pyo3(signature = (out, *, pad = false))]
    fn read_into(&self, py: Python<'_>, out: &Bound<'_, PyAny>, pad: bool) -> PyResult<usize> {
        let view = PyUntypedBuffer::get(out)?;
        if view.readonly() {
            return Err(audio_err("out must be a writable array"));
        }
        if !view.is_c_contiguous() {
            return Err(audio_err("out must be C-contiguous"));
        }
        let big = view.len_bytes() >= DETACH_THRESHOLD_BYTES;
        let store = &self.store;
        if let Ok(typed) = view.as_typed::<i16>() {
            let raw = RawOut {
                ptr: typed.buf_ptr().cast::<i16>(),
                len: typed.item_count(),
            };
            return Ok(run(
                py,
                big,
                || with_ring!(store, r => read_raw(r, raw, pad)),
            ));
        }
        if let Ok(typed) = view.as_typed::<f32>() {
            let raw = RawOut {
                ptr: typed.buf_ptr().cast::<f32>(),
                len: typed.item_count(),
            };
            return Ok(run(
                py,
                big,
                || with_ring!(store, r => read_raw(r, raw, pad)),
            ));
        }
        Err(audio_err(format!(
            "out must be an int16 or float32 array, got format {:?}",
            view.format().to_string_lossy()
        )))
    }

    /// Samples ready to read.
    #[getter]
    fn available(&self) -> usize {
        with_ring!(&self.store, r => r.available())
    }

    /// Room before the overflow policy applies.
    #[getter]
    fn free(&self) -> usize {
        with_ring!(&self.store, r => r.free())
    }

    #[getter]
    fn capacity(&self) -> usize {
        with_ring!(&self.store, r => r.capacity())
    }

    /// Total samples stored by `write` since creation or `reset()`.
    #[getter]
    fn written(&self) -> u64 {
        with_ring!(&self.store, r => r.written())
    }

    /// Total samples handed out by `read`/`read_into` since creation or
    /// `reset()`: `consumed / rate` is the time actually played.
    #[getter]
    fn consumed(&self) -> u64 {
        with_ring!(&self.store, r => r.consumed())
    }

    /// Total samples lost to overflow since creation or `reset()`.
    #[getter]
    fn overflows(&self) -> u64 {
        with_ring!(&self.store, r => r.overflows())
    }

    /// Total samples removed unread (`clear()`, or evicted by `drop_oldest`)
    /// since creation or `reset()`. `written - skipped` is the `consumed` count
    /// at which the next sample written will be read: where an audio item that
    /// starts now begins, in played-out samples.
    #[getter]
    fn skipped(&self) -> u64 {
        with_ring!(&self.store, r => r.skipped())
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        match self.store {
            Store::I16(_) => "int16",
            Store::F32(_) => "float32",
        }
    }

    #[getter]
    fn overflow(&self) -> &'static str {
        with_ring!(&self.store, r => r.policy().name())
    }

    /// Discard all unread samples (not counted as consumed); returns how many.
    fn clear(&self) -> usize {
        with_ring!(&self.store, r => r.clear())
    }

    /// Discard all unread samples and zero `written`, `consumed`, `overflows`.
    fn reset(&self) {
        with_ring!(&self.store, r => r.reset())
    }

    fn __len__(&self) -> usize {
        self.available()
    }

    fn __repr__(&self) -> String {
        format!(
            "RingBuffer(capacity={}, dtype={:?}, overflow={:?}, available={})",
            self.capacity(),
            self.dtype(),
            self.overflow(),
            self.available()
        )
    }
}

/// Run `f` with the GIL released if `big`.
fn run<R: Send>(py: Python<'_>, big: bool, f: impl FnOnce() -> R + Send) -> R {
    if big {
        py.detach(f)
    } else {
        f()
    }
}

/// A new array of up to `want` samples taken from `ring`.
fn read_array<'py, T>(
    py: Python<'py>,
    ring: &SampleRing<T>,
    want: usize,
    big: bool,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Sample + numpy::Element,
{
    let arr = PyArray1::<T>::zeros(py, want, false);
    // SAFETY: the array was just created here and no Python code has seen it,
    // so this is the only reference to its (contiguous) memory.
    let dst = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
    let got = run(py, big, || ring.read_into(dst));
    if got == want {
        return Ok(arr.into_any());
    }
    // Another reader or a `drop_oldest` writer took samples meanwhile.
    arr.get_item(PySlice::new(py, 0, got as isize, 1))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RingBuffer>()?;
    Ok(())
}
