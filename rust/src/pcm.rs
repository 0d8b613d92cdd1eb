//! PCM16 <-> float conversion and downmixing.
//!
//! Scale: float = int16 / 32768, int16 = clamp(round(float * 32768)). Every int16
//! survives a round trip through float exactly; +1.0 clips to 32767, NaN maps to 0.

use pyo3::prelude::*;

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

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
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
}
