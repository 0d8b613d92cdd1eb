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

use crate::buffer::{new_bytes_with, AudioBuffer, Samples, DETACH_THRESHOLD_BYTES};
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
/// call, so that loops over it vectorise.
///
/// Why it is exact: widening to f64 and scaling by 2^15 are exact, and for any
/// |v| < 2^15 a 24-bit mantissa plus 0.5 fits the 53-bit f64 mantissa, so
/// `trunc(v ± 0.5)` is round-half-away-from-zero with no double rounding (the
/// trap of doing this in f32, where 0.49999997 + 0.5 rounds up to 1.0). Larger
/// magnitudes saturate either way; NaN stays NaN and `as` maps it to 0.
#[inline(always)]
pub fn f32_to_i16_fast(x: f32) -> i16 {
    let v = x as f64 * 32768.0;
    (v + 0.5f64.copysign(v)) as i16
}

/// float32 samples -> little-endian PCM16 bytes. `out` holds `2 * src.len()` bytes.
pub fn f32_to_pcm16_bytes(src: &[f32], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&f32_to_i16_fast(x).to_le_bytes());
    }
}

/// float64 samples -> little-endian PCM16 bytes. `out` holds `2 * src.len()` bytes.
pub fn f64_to_pcm16_bytes(src: &[f64], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&f64_to_i16(x).to_le_bytes());
    }
}

/// int16 samples -> little-endian PCM16 bytes (a copy on little-endian hosts).
pub fn i16_to_pcm16_bytes(src: &[i16], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

/// PCM16 samples -> float32 in [-1, 1).
pub fn pcm16_to_f32(src: &[i16], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = i16_to_f32(x);
    }
}

/// Average `channels` interleaved int16 channels into one, rounding the mean
/// half away from zero (the same tie rule as the float conversion). The sum
/// is taken in i32, so no intermediate can overflow for up to 65536 channels.
/// `src.len()` must be a multiple of `channels`; `out` holds one sample per frame.
pub fn downmix_i16(src: &[i16], channels: usize, out: &mut [i16]) {
    if channels == 0 {
        return;
    }
    if channels == 2 {
        // The common case gets its own loop so the compiler can vectorise it.
        for (o, f) in out.iter_mut().zip(src.chunks_exact(2)) {
            let s = f[0] as i32 + f[1] as i32;
            // s / 2 with ties away from zero: (s + sign(s)) / 2, truncating.
            *o = ((s + s.signum()) / 2) as i16;
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
        Samples::I16(s) => new_bytes_with(py, s.len() * 2, |o| i16_to_pcm16_bytes(&s, o))?,
        Samples::F32(s) => new_bytes_with(py, s.len() * 2, |o| f32_to_pcm16_bytes(&s, o))?,
        Samples::F64(s) => new_bytes_with(py, s.len() * 2, |o| f64_to_pcm16_bytes(&s, o))?,
    };
    Ok(out.into_any())
}

/// The name of a requested dtype: a string, or anything `numpy.dtype` accepts.
fn dtype_name(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = dtype.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    let np = py.import(intern!(py, "numpy"))?;
    np.call_method1(intern!(py, "dtype"), (dtype,))
        .and_then(|d| d.getattr(intern!(py, "name")))
        .and_then(|n| n.extract::<String>())
        .map_err(|_| {
            audio_err(format!(
                "unsupported dtype {dtype}: expected \"int16\" or \"float32\""
            ))
        })
}

/// `from_pcm16(data, dtype="int16") -> numpy.ndarray` (a new, writable array).
#[pyfunction]
#[pyo3(signature = (data, dtype = None))]
fn from_pcm16<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = match dtype {
        None => "int16".to_owned(),
        Some(d) => dtype_name(py, d)?,
    };
    let buf = AudioBuffer::get(data)?;
    let pcm = buf.pcm16()?;
    match name.as_str() {
        "int16" => {
            Ok(new_array_with(py, pcm.len(), |o: &mut [i16]| o.copy_from_slice(&pcm))?.into_any())
        }
        "float32" => Ok(new_array_with(py, pcm.len(), |o| pcm16_to_f32(&pcm, o))?.into_any()),
        other => Err(audio_err(format!(
            "unsupported dtype {other:?}: expected \"int16\" or \"float32\""
        ))),
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
