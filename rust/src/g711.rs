//! ITU-T G.711 μ-law and A-law, the 8-bit companding used by telephone audio.
//!
//! Decoding is a 256-entry table lookup; the tables are computed at compile
//! time from the G.711 reconstruction formulas. Encoding is also a lookup:
//! μ-law only looks at the top 14 bits of a PCM16 sample and A-law at the top
//! 13, so a 16 KiB / 8 KiB table (built at compile time by the segment search
//! below) replaces the per-sample branchy search and stays in L1 cache.
//!
//! The encoders quantise exactly like the Sun Microsystems reference code that
//! CPython's `audioop.lin2ulaw`/`lin2alaw` used (removed in Python 3.13), so
//! replacing `audioop` with these functions gives byte-identical output.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffer::{new_bytes_with, pcm16_from_bytes, AudioBuffer, SampleFormat, Samples};
use crate::errors::audio_err;
use crate::pcm::{f32_to_i16_fast, f64_to_i16};

/// μ-law bias (33 in 14-bit units) that makes the segments start at zero.
const ULAW_BIAS: i32 = 33;
/// Largest 14-bit magnitude μ-law can represent before the bias.
const ULAW_CLIP: i32 = 8159;

/// Decode one μ-law code to PCM16: magnitude = ((2m + 33) << e) - 33 in
/// 14-bit units, scaled by 4. Codes are transmitted bit-inverted.
const fn ulaw_to_linear(code: u8) -> i16 {
    let c = !code;
    let exponent = ((c >> 4) & 0x07) as i32;
    let mantissa = (c & 0x0F) as i32;
    let magnitude = (((2 * mantissa + ULAW_BIAS) << exponent) - ULAW_BIAS) * 4;
    if c & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Decode one A-law code to PCM16: magnitude = 2m + 1 in segment 0 and
/// (2m + 33) << (e - 1) above, in 13-bit units, scaled by 8. Even bits are
/// inverted on the line (XOR 0x55) and a set sign bit means positive.
const fn alaw_to_linear(code: u8) -> i16 {
    let c = code ^ 0x55;
    let exponent = ((c >> 4) & 0x07) as i32;
    let mantissa = (c & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (2 * mantissa + 1) * 8
    } else {
        ((2 * mantissa + 33) << (exponent - 1)) * 8
    };
    if c & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encode a 14-bit two's complement sample (PCM16 >> 2) to μ-law.
const fn ulaw_from_14bit(sample: i32) -> u8 {
    let (magnitude, mask) = if sample < 0 {
        (-sample, 0x7F)
    } else {
        (sample, 0xFF)
    };
    let biased = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    } + ULAW_BIAS;
    // Segment s covers biased magnitudes below 64 << s; past the last one the
    // sample clips to the largest code.
    let mut segment = 0;
    while segment < 8 && biased >= (0x40 << segment) {
        segment += 1;
    }
    if segment == 8 {
        return 0x7F ^ mask;
    }
    let code = (segment << 4) | ((biased >> (segment + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// Encode a 13-bit two's complement sample (PCM16 >> 3) to A-law.
const fn alaw_from_13bit(sample: i32) -> u8 {
    // Negative samples are mirrored with one's complement, so -1 pairs with 0.
    let (magnitude, mask) = if sample >= 0 {
        (sample, 0xD5)
    } else {
        (-sample - 1, 0x55)
    };
    // Segment s covers magnitudes below 32 << s.
    let mut segment = 0;
    while segment < 8 && magnitude >= (0x20 << segment) {
        segment += 1;
    }
    if segment == 8 {
        return 0x7F ^ mask;
    }
    // Segments 0 and 1 share the same step size.
    let shift = if segment < 2 { 1 } else { segment };
    let code = (segment << 4) | ((magnitude >> shift) & 0x0F);
    (code as u8) ^ mask
}

const fn build_decode(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    table
}

/// Encode tables indexed by the top `BITS` bits of the sample as unsigned
/// (i.e. `(x as u16) >> (16 - BITS)`), so index 0 is zero and the upper half
/// holds the negative samples.
const fn build_encode<const N: usize>(alaw: bool) -> [u8; N] {
    let bits = N.trailing_zeros();
    let mut table = [0u8; N];
    let mut i = 0;
    while i < N {
        // Sign-extend the index back to a `bits`-bit two's complement sample.
        let sample = ((i as i32) << (32 - bits)) >> (32 - bits);
        table[i] = if alaw {
            alaw_from_13bit(sample)
        } else {
            ulaw_from_14bit(sample)
        };
        i += 1;
    }
    table
}

/// PCM16 value of each μ-law code.
pub static ULAW_DECODE: [i16; 256] = build_decode(false);
/// PCM16 value of each A-law code.
pub static ALAW_DECODE: [i16; 256] = build_decode(true);
static ULAW_ENCODE: [u8; 1 << 14] = build_encode::<{ 1 << 14 }>(false);
static ALAW_ENCODE: [u8; 1 << 13] = build_encode::<{ 1 << 13 }>(true);

/// Encode one PCM16 sample to μ-law.
#[inline]
pub fn ulaw_encode_sample(x: i16) -> u8 {
    // The index is < 2^14 by construction, so `get` never misses.
    ULAW_ENCODE
        .get((x as u16 >> 2) as usize)
        .copied()
        .unwrap_or(0xFF)
}

/// Encode one PCM16 sample to A-law.
#[inline]
pub fn alaw_encode_sample(x: i16) -> u8 {
    ALAW_ENCODE
        .get((x as u16 >> 3) as usize)
        .copied()
        .unwrap_or(0xD5)
}

/// PCM16 samples -> μ-law codes; `out.len() == src.len()`.
pub fn ulaw_encode_into(src: &[i16], out: &mut [u8]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = ulaw_encode_sample(x);
    }
}

/// PCM16 samples -> A-law codes; `out.len() == src.len()`.
pub fn alaw_encode_into(src: &[i16], out: &mut [u8]) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = alaw_encode_sample(x);
    }
}

/// Codes -> little-endian PCM16 bytes through a 256-entry table; `out` holds
/// two bytes per code.
pub fn decode_into(table: &[i16; 256], src: &[u8], out: &mut [u8]) {
    for (o, &c) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&table[c as usize].to_le_bytes());
    }
}

/// μ-law codes -> little-endian PCM16 bytes.
pub fn ulaw_decode_into(src: &[u8], out: &mut [u8]) {
    decode_into(&ULAW_DECODE, src, out);
}

/// A-law codes -> little-endian PCM16 bytes.
pub fn alaw_decode_into(src: &[u8], out: &mut [u8]) {
    decode_into(&ALAW_DECODE, src, out);
}

/// Shared wrapper for both encoders. PCM16 (bytes or int16) is encoded as is;
/// float arrays go through the float -> PCM16 rule first, sample by sample,
/// without an intermediate buffer.
///
/// Generic over the encoder (not a `fn` pointer) so the per-sample table
/// lookup is inlined into the loop.
fn encode_py<'py, E>(
    py: Python<'py>,
    samples: &Bound<'py, PyAny>,
    one: E,
) -> PyResult<Bound<'py, PyBytes>>
where
    E: Fn(i16) -> u8 + Send + Sync + Copy,
{
    // `bytes` is the common case for 20 ms telephony frames, where the buffer
    // protocol round trip costs as much as the encoding itself.
    if let Ok(b) = samples.cast_exact::<PyBytes>() {
        let pcm = pcm16_from_bytes(b.as_bytes())?;
        return new_bytes_with(py, pcm.len(), |o| {
            for (o, &x) in o.iter_mut().zip(pcm.iter()) {
                *o = one(x);
            }
        });
    }
    let buf = AudioBuffer::get(samples)?;
    match buf.samples()? {
        Samples::I16(s) => new_bytes_with(py, s.len(), |o| {
            for (o, &x) in o.iter_mut().zip(s.iter()) {
                *o = one(x);
            }
        }),
        Samples::F32(s) => new_bytes_with(py, s.len(), |o| {
            for (o, &x) in o.iter_mut().zip(s.iter()) {
                *o = one(f32_to_i16_fast(x));
            }
        }),
        Samples::F64(s) => new_bytes_with(py, s.len(), |o| {
            for (o, &x) in o.iter_mut().zip(s.iter()) {
                *o = one(f64_to_i16(x));
            }
        }),
    }
}

fn decode_py<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    table: &'static [i16; 256],
) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = data.cast_exact::<PyBytes>() {
        let src = b.as_bytes();
        return new_bytes_with(py, src.len() * 2, |o| decode_into(table, src, o));
    }
    let buf = AudioBuffer::get(data)?;
    if buf.format() != SampleFormat::Bytes {
        return Err(audio_err(format!(
            "G.711 data must be bytes (one code per byte), got {:?} samples",
            buf.format()
        )));
    }
    let src = buf.bytes();
    new_bytes_with(py, src.len() * 2, |o| decode_into(table, src, o))
}

/// `ulaw_encode(pcm16) -> bytes`: one μ-law byte per sample.
#[pyfunction]
fn ulaw_encode<'py>(py: Python<'py>, pcm16: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    encode_py(py, pcm16, ulaw_encode_sample)
}

/// `ulaw_decode(data) -> bytes`: PCM16 little-endian, two bytes per code.
#[pyfunction]
fn ulaw_decode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    decode_py(py, data, &ULAW_DECODE)
}

/// `alaw_encode(pcm16) -> bytes`: one A-law byte per sample.
#[pyfunction]
fn alaw_encode<'py>(py: Python<'py>, pcm16: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    encode_py(py, pcm16, alaw_encode_sample)
}

/// `alaw_decode(data) -> bytes`: PCM16 little-endian, two bytes per code.
#[pyfunction]
fn alaw_decode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    decode_py(py, data, &ALAW_DECODE)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ulaw_encode, m)?)?;
    m.add_function(wrap_pyfunction!(ulaw_decode, m)?)?;
    m.add_function(wrap_pyfunction!(alaw_encode, m)?)?;
    m.add_function(wrap_pyfunction!(alaw_decode, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(ULAW_DECODE[0xFF], 0);
        assert_eq!(ULAW_DECODE[0x7F], 0);
        assert_eq!(ULAW_DECODE[0x80], 32124);
        assert_eq!(ULAW_DECODE[0x00], -32124);
        assert_eq!(ALAW_DECODE[0xD5], 8);
        assert_eq!(ALAW_DECODE[0x55], -8);
        assert_eq!(ALAW_DECODE[0xAA], 32256);
        assert_eq!(ALAW_DECODE[0x2A], -32256);
        assert_eq!(ulaw_encode_sample(0), 0xFF);
        assert_eq!(alaw_encode_sample(0), 0xD5);
        assert_eq!(alaw_encode_sample(-1), 0x55);
        assert_eq!(ulaw_encode_sample(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_sample(i16::MIN), 0x00);
        assert_eq!(alaw_encode_sample(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_sample(i16::MIN), 0x2A);
    }

    #[test]
    fn encode_inverts_decode() {
        for code in 0..=255u8 {
            if code != 0x7F {
                assert_eq!(
                    ulaw_encode_sample(ULAW_DECODE[code as usize]),
                    code,
                    "mu {code:#x}"
                );
            }
            assert_eq!(
                alaw_encode_sample(ALAW_DECODE[code as usize]),
                code,
                "A {code:#x}"
            );
        }
    }

    #[test]
    fn quantisation_is_monotonic_and_bounded() {
        for (encode, table, max_err) in [
            (ulaw_encode_sample as fn(i16) -> u8, &ULAW_DECODE, 1024 + 3),
            (alaw_encode_sample, &ALAW_DECODE, 512 + 7),
        ] {
            let top = table.iter().copied().max().unwrap_or(0) as i32;
            let mut prev = i16::MIN;
            for x in i16::MIN..=i16::MAX {
                let y = table[encode(x) as usize];
                assert!(y >= prev, "not monotonic at {x}");
                // Inside the coding range the error is at most half the
                // largest step (plus the 14/13-bit truncation); past the top
                // reconstruction level it is clipping.
                if (x as i32).abs() <= top {
                    assert!((y as i32 - x as i32).abs() <= max_err, "{x} -> {y}");
                }
                prev = y;
            }
        }
    }

    #[test]
    fn slice_kernels() {
        let pcm = [0i16, 1000, -1000, 32767];
        let mut codes = [0u8; 4];
        ulaw_encode_into(&pcm, &mut codes);
        let mut back = [0u8; 8];
        ulaw_decode_into(&codes, &mut back);
        for (i, &x) in pcm.iter().enumerate() {
            let y = i16::from_le_bytes([back[2 * i], back[2 * i + 1]]);
            assert!((y as i32 - x as i32).abs() <= 1024 + 3);
        }
        alaw_encode_into(&pcm, &mut codes);
        alaw_decode_into(&codes, &mut back);
        assert_eq!(i16::from_le_bytes([back[0], back[1]]), 8);
    }
}
