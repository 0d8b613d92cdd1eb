//! PCM16 <-> float conversion and downmixing.
//!
//! Scale: float = int16 / 32768, int16 = clamp(round(float * 32768)). Every int16
//! survives a round trip through float exactly; +1.0 clips to 32767, NaN maps to 0.
//!
//! The per-sample functions below define the rule; the slice kernels apply it to
//! whole buffers and are what the Python wrappers and the WAV decoder call. The
//! kernels are plain Rust (no pyo3 types) so `cargo test` and criterion use them
//! directly.

use numpy::{Element, PyArray1, PyArrayMethods};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::buffer::{
    bytes_copy, new_bytes_with, pcm16_from_bytes, AudioBuffer, Samples, DETACH_THRESHOLD_BYTES,
};
use crate::errors::audio_err;

/// Convert one float sample to PCM16 (clip outside [-1, 1), NaN -> 0).
#[inline]
pub fn f32_to_i16(x: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is exactly the clipping we want.
    (x * 32768.0).round() as i16
}

/// Convert one double sample to PCM16 (clip outside [-1, 1), NaN -> 0).
#[inline]
pub fn f64_to_i16(x: f64) -> i16 {
    (x * 32768.0).round() as i16
}

/// Convert one PCM16 sample to float in [-1, 1).
#[inline]
pub fn i16_to_f32(x: i16) -> f32 {
    x as f32 * (1.0 / 32768.0)
}

/// Same result as [`f32_to_i16`] for every `f32`, but without a libm `round`
/// call or a saturating cast, so that loops over it vectorise.
///
/// Why it is exact: scaling by 2^15 is exact, and adding the largest float
/// below one half (not 0.5 itself: 0.49999997 + 0.5 would round up to 1.0)
/// then truncating rounds half away from zero for every |v| < 2^15; the unit
/// tests check this around every rounding boundary, and an on-demand test
/// over all 2^32 bit patterns. Larger magnitudes are
/// clamped, and NaN is mapped to 0 before the conversion.
#[inline(always)]
pub fn f32_to_i16_fast(x: f32) -> i16 {
    const BELOW_HALF: f32 = 0.5 - f32::EPSILON / 4.0; // 0.5 - 2^-25
    let v = x * 32768.0;
    let y = (v + BELOW_HALF.copysign(v)).clamp(-32768.0, 32767.0);
    let y = if y.is_nan() { 0.0 } else { y };
    // SAFETY: `y` is finite and within i32 range after the clamp and NaN check.
    unsafe { y.to_int_unchecked::<i32>() as i16 }
}

/// Apply `f` to every sample and store the results as little-endian PCM16.
/// Python `bytes` buffers are 8-byte aligned, so on little-endian hosts the
/// results are stored as `i16` directly (which lets the loop vectorise); an
/// unaligned `out` falls back to byte-wise stores.
#[inline(always)]
pub fn map_to_pcm16_bytes<T: Copy>(src: &[T], out: &mut [u8], f: impl Fn(T) -> i16) {
    if cfg!(target_endian = "little") {
        // SAFETY: every bit pattern is a valid i16; `align_to_mut` only hands
        // out the correctly aligned middle of `out`.
        let (head, body, _) = unsafe { out.align_to_mut::<i16>() };
        if head.is_empty() {
            for (o, &x) in body.iter_mut().zip(src) {
                *o = f(x);
            }
            return;
        }
    }
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&f(x).to_le_bytes());
    }
}

/// Like [`map_to_pcm16_bytes`] for samples stored as little-endian bytes
/// (e.g. a WAV data chunk): viewed in place when aligned, which is the usual
/// case, and decoded sample by sample otherwise (never copied).
#[inline(always)]
pub fn map_le_to_pcm16_bytes<T: Copy, const N: usize>(
    data: &[u8],
    out: &mut [u8],
    from_le: fn([u8; N]) -> T,
    f: impl Fn(T) -> i16,
) {
    if cfg!(target_endian = "little") {
        // SAFETY: T is a plain number (i32/f32/f64) valid for every bit pattern.
        let (head, body, tail) = unsafe { data.align_to::<T>() };
        if head.is_empty() && tail.is_empty() {
            map_to_pcm16_bytes(body, out, f);
            return;
        }
    }
    for (o, s) in out.chunks_exact_mut(2).zip(data.chunks_exact(N)) {
        if let Ok(b) = s.try_into() {
            o.copy_from_slice(&f(from_le(b)).to_le_bytes());
        }
    }
}

/// float32 samples -> little-endian PCM16 bytes. `out` holds `2 * src.len()` bytes.
pub fn f32_to_pcm16_bytes(src: &[f32], out: &mut [u8]) {
    map_to_pcm16_bytes(src, out, f32_to_i16_fast);
}

/// float64 samples -> little-endian PCM16 bytes. `out` holds `2 * src.len()` bytes.
pub fn f64_to_pcm16_bytes(src: &[f64], out: &mut [u8]) {
    map_to_pcm16_bytes(src, out, f64_to_i16);
}

/// int16 samples -> little-endian PCM16 bytes (a copy on little-endian hosts).
pub fn i16_to_pcm16_bytes(src: &[i16], out: &mut [u8]) {
    map_to_pcm16_bytes(src, out, |x| x);
}

/// PCM16 samples -> float32 in [-1, 1).
pub fn pcm16_to_f32(src: &[i16], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = i16_to_f32(x);
    }
}

/// Average `channels` interleaved int16 channels into one, rounding the mean
/// half away from zero (the same tie rule as the float conversion). Sums are
/// taken in a wider integer, so no intermediate can overflow.
/// `src.len()` must be a multiple of `channels`; `out` holds one sample per frame.
pub fn downmix_i16(src: &[i16], channels: usize, out: &mut [i16]) {
    if channels == 0 {
        return;
    }
    if channels == 2 {
        // The common case gets its own loop so the compiler can vectorise it.
        for (o, f) in out.iter_mut().zip(src.chunks_exact(2)) {
            if let &[a, b] = f {
                let s = a as i32 + b as i32;
                // s / 2 with ties away from zero, branch-free so it vectorises:
                // floor((s + 1) / 2) for s >= 0 and floor(s / 2) for s < 0.
                *o = ((s + 1 + (s >> 31)) >> 1) as i16;
            }
        }
        return;
    }
    let n = channels as i64;
    for (o, f) in out.iter_mut().zip(src.chunks_exact(channels)) {
        let s: i64 = f.iter().map(|&x| x as i64).sum();
        let half = n / 2;
        let q = if s >= 0 {
            (s + half) / n
        } else {
            -((-s + half) / n)
        };
        *o = q as i16;
    }
}

/// Average interleaved float channels (sum in order, then divide, as numpy's
/// `mean(axis=1)` does for small channel counts).
pub fn downmix_float<T>(src: &[T], channels: usize, out: &mut [T])
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Div<Output = T> + From<u16> + Default,
{
    let Ok(c) = u16::try_from(channels) else {
        return;
    };
    if c == 0 {
        return;
    }
    let n = T::from(c);
    for (o, f) in out.iter_mut().zip(src.chunks_exact(channels)) {
        *o = f.iter().fold(T::default(), |a, &b| a + b) / n;
    }
}

/// A fresh 1-D numpy array of `len` elements filled by `fill`, with the GIL
/// released when the work is large. `zeros` (calloc) rather than an
/// uninitialised array so that the slice we hand out is always initialised.
pub(crate) fn new_array_with<'py, T, F>(
    py: Python<'py>,
    len: usize,
    fill: F,
) -> PyResult<Bound<'py, PyArray1<T>>>
where
    T: Element + Send,
    F: FnOnce(&mut [T]) + Send,
{
    let arr = PyArray1::<T>::zeros(py, [len], false);
    // SAFETY: the array was just created, is C-contiguous, and no other
    // reference to it exists yet, so this is the only view of its memory.
    let slice = unsafe { arr.as_slice_mut() }.map_err(|e| audio_err(e.to_string()))?;
    if len * std::mem::size_of::<T>() >= DETACH_THRESHOLD_BYTES {
        py.detach(|| fill(slice));
    } else {
        fill(slice);
    }
    Ok(arr)
}

/// `to_pcm16(samples) -> bytes`: floats are converted by the rule above, PCM16
/// passes through (a `bytes` object is returned as is, without a copy).
#[pyfunction]
fn to_pcm16<'py>(py: Python<'py>, samples: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(b) = samples.cast_exact::<PyBytes>() {
        let n = b.as_bytes().len();
        if n % 2 != 0 {
            return Err(audio_err(format!(
                "PCM16 data must have an even number of bytes, got {n}"
            )));
        }
        return Ok(b.clone().into_any());
    }
    let buf = AudioBuffer::get(samples)?;
    let out = match buf.samples()? {
        // PCM16 in is a plain copy of the buffer on little-endian hosts.
        Samples::I16(_) if cfg!(target_endian = "little") => bytes_copy(py, buf.bytes())?,
        Samples::I16(s) => new_bytes_with(py, s.len() * 2, |o| i16_to_pcm16_bytes(&s, o))?,
        Samples::F32(s) => new_bytes_with(py, s.len() * 2, |o| f32_to_pcm16_bytes(&s, o))?,
        Samples::F64(s) => new_bytes_with(py, s.len() * 2, |o| f64_to_pcm16_bytes(&s, o))?,
    };
    Ok(out.into_any())
}

/// The array types `from_pcm16` can produce.
#[derive(Clone, Copy)]
enum OutType {
    I16,
    F32,
}

impl OutType {
    fn from_name(name: &str) -> PyResult<Self> {
        match name {
            "int16" => Ok(OutType::I16),
            "float32" => Ok(OutType::F32),
            other => Err(audio_err(format!(
                "unsupported dtype {other:?}: expected \"int16\" or \"float32\""
            ))),
        }
    }

    /// From a string (compared in place, no allocation on the per-chunk path)
    /// or anything `numpy.dtype` accepts, such as `np.float32`.
    fn parse(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(s) = dtype.cast::<PyString>() {
            return Self::from_name(&s.to_cow()?);
        }
        let np = py.import(intern!(py, "numpy"))?;
        let name = np
            .call_method1(intern!(py, "dtype"), (dtype,))
            .and_then(|d| d.getattr(intern!(py, "name")))
            .and_then(|n| n.extract::<String>())
            .map_err(|_| {
                audio_err(format!(
                    "unsupported dtype {dtype}: expected \"int16\" or \"float32\""
                ))
            })?;
        Self::from_name(&name)
    }
}

/// `from_pcm16(data, dtype="int16") -> numpy.ndarray` (a new, writable array).
#[pyfunction]
#[pyo3(signature = (data, dtype = None), text_signature = "(data, dtype='int16')")]
fn from_pcm16<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let out = match dtype {
        None => OutType::I16,
        Some(d) => OutType::parse(py, d)?,
    };
    // `bytes` (the usual 20 ms chunk) is read directly, skipping the buffer
    // protocol round trip that costs as much as converting a small chunk.
    let buf;
    let pcm = match data.cast_exact::<PyBytes>() {
        Ok(b) => pcm16_from_bytes(b.as_bytes())?,
        Err(_) => {
            buf = AudioBuffer::get(data)?;
            buf.pcm16()?
        }
    };
    match out {
        OutType::I16 => {
            Ok(new_array_with(py, pcm.len(), |o: &mut [i16]| o.copy_from_slice(&pcm))?.into_any())
        }
        OutType::F32 => Ok(new_array_with(py, pcm.len(), |o| pcm16_to_f32(&pcm, o))?.into_any()),
    }
}

/// `to_mono(samples, channels) -> same kind`: byte buffers give `bytes`, numpy
/// arrays give a 1-D array of the same dtype. `channels == 1` returns `samples`.
#[pyfunction]
fn to_mono<'py>(
    py: Python<'py>,
    samples: &Bound<'py, PyAny>,
    channels: i64,
) -> PyResult<Bound<'py, PyAny>> {
    if !(1..=65535).contains(&channels) {
        return Err(audio_err(format!(
            "channels must be between 1 and 65535, got {channels}"
        )));
    }
    let c = channels as usize;
    let buf = AudioBuffer::get(samples)?;
    let s = buf.samples()?;
    if s.len() % c != 0 {
        return Err(audio_err(format!(
            "{} samples is not a whole number of {c}-channel frames",
            s.len()
        )));
    }
    if c == 1 {
        return Ok(samples.clone());
    }
    let frames = s.len() / c;
    let raw = buf.format() == crate::buffer::SampleFormat::Bytes;
    match s {
        Samples::I16(s) if raw => Ok(new_bytes_with(py, frames * 2, |o| {
            // Downmix a frame block at a time into a stack buffer, then store
            // little-endian: no heap scratch for the bytes result.
            let mut tmp = [0i16; 256];
            for (oc, ic) in o.chunks_mut(tmp.len() * 2).zip(s.chunks(tmp.len() * c)) {
                let n = ic.len() / c;
                downmix_i16(ic, c, &mut tmp[..n]);
                i16_to_pcm16_bytes(&tmp[..n], oc);
            }
        })?
        .into_any()),
        Samples::I16(s) => Ok(new_array_with(py, frames, |o| downmix_i16(&s, c, o))?.into_any()),
        Samples::F32(s) => Ok(new_array_with(py, frames, |o| downmix_float(&s, c, o))?.into_any()),
        Samples::F64(s) => Ok(new_array_with(py, frames, |o| downmix_float(&s, c, o))?.into_any()),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(to_pcm16, m)?)?;
    m.add_function(wrap_pyfunction!(from_pcm16, m)?)?;
    m.add_function(wrap_pyfunction!(to_mono, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_for_every_int16() {
        for v in i16::MIN..=i16::MAX {
            assert_eq!(f32_to_i16(i16_to_f32(v)), v);
        }
    }

    #[test]
    fn clips_and_maps_nan_to_zero() {
        assert_eq!(f32_to_i16(1.0), i16::MAX);
        assert_eq!(f32_to_i16(-1.0), i16::MIN);
        assert_eq!(f32_to_i16(7.5), i16::MAX);
        assert_eq!(f32_to_i16(f32::NEG_INFINITY), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f64_to_i16(f64::NAN), 0);
    }

    #[test]
    fn fast_conversion_matches_the_rule_across_the_f32_range() {
        // A stride through every bit pattern (all exponents, NaNs, infinities)...
        let mut bits = 0u64;
        while bits <= u32::MAX as u64 {
            let x = f32::from_bits(bits as u32);
            assert_eq!(f32_to_i16_fast(x), f32_to_i16(x), "{x:e} ({bits:#x})");
            bits += 997;
        }
        // ...and every float within 64 ulps of each integer and half-integer
        // of the int16 range, where rounding decisions are made.
        for k in -65538i32..=65538 {
            let centre = k as f32 * 0.5 / 32768.0;
            let mut up = centre;
            let mut down = centre;
            for _ in 0..64 {
                for x in [up, down, -up, -down] {
                    assert_eq!(f32_to_i16_fast(x), f32_to_i16(x), "{x:e}");
                }
                up = f32::from_bits(up.to_bits() + 1);
                down = f32::from_bits(down.to_bits().saturating_sub(1));
            }
        }
        assert_eq!(f32_to_i16_fast(0.49999997 / 32768.0), 0);
        assert_eq!(f32_to_i16_fast(0.5 / 32768.0), 1);
        assert_eq!(f32_to_i16_fast(-0.5 / 32768.0), -1);
        assert_eq!(f32_to_i16_fast(f32::NAN), 0);
        assert_eq!(f32_to_i16_fast(-0.0), 0);
    }

    /// All 2^32 bit patterns: about 10 s in release, so run on demand with
    /// `cargo test --release -- --ignored` after touching the conversion.
    #[test]
    #[ignore = "exhaustive over every f32; run with --ignored"]
    fn fast_conversion_matches_the_rule_for_every_f32() {
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            assert_eq!(f32_to_i16_fast(x), f32_to_i16(x), "{x:e} ({bits:#x})");
        }
    }

    #[test]
    fn slice_kernels_write_little_endian() {
        let mut out = [0u8; 8];
        f32_to_pcm16_bytes(&[0.5, -1.0, 2.0, f32::NAN], &mut out);
        assert_eq!(out, [0x00, 0x40, 0x00, 0x80, 0xff, 0x7f, 0, 0]);
        f64_to_pcm16_bytes(&[0.5, -1.0, 2.0, f64::NAN], &mut out);
        assert_eq!(out, [0x00, 0x40, 0x00, 0x80, 0xff, 0x7f, 0, 0]);
        let mut f = [0f32; 2];
        pcm16_to_f32(&[-32768, 16384], &mut f);
        assert_eq!(f, [-1.0, 0.5]);
    }

    #[test]
    fn downmix_rounds_half_away_from_zero() {
        let mut out = [0i16; 5];
        downmix_i16(
            &[1, 2, -1, -2, 32767, 32767, -32768, -32768, 3, -3],
            2,
            &mut out,
        );
        assert_eq!(out, [2, -2, 32767, -32768, 0]);
        let mut out3 = [0i16; 3];
        // means 1/3, -2/3 (-> -1) and exactly -32768
        downmix_i16(&[1, 0, 0, -1, -1, 0, -32768, -32768, -32768], 3, &mut out3);
        assert_eq!(out3, [0, -1, -32768]);
        let mut out4 = [0i16; 1];
        downmix_i16(&[1, 1, 0, 0], 4, &mut out4); // 0.5 -> 1
        assert_eq!(out4, [1]);
        let mut fo = [0f32; 2];
        downmix_float(&[0.25f32, 0.75, -1.0, 0.0], 2, &mut fo);
        assert_eq!(fo, [0.5, -0.5]);
    }
}
