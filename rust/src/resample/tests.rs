//! Kernel tests without Python: chunking invariance, lengths, delay, bad input.

use super::plan::{validate, Quality};
use super::stream::{resample_clip, Input, StreamResampler, FLOAT_LIMIT};

const PAIRS: [(i64, i64); 6] = [
    (48000, 24000),
    (24000, 16000),
    (16000, 24000),
    (44100, 24000),
    (22050, 8000),
    (8000, 44100),
];
const QUALITIES: [Quality; 2] = [Quality::High, Quality::LowLatency];

/// Deterministic pseudo-noise in [-0.5, 0.5).
fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

fn run(s: &mut StreamResampler, x: &[f32], chunks: &[usize]) -> Vec<f32> {
    let mut out = Vec::new();
    let mut pos = 0;
    for &c in chunks.iter().cycle() {
        if pos >= x.len() {
            break;
        }
        let end = (pos + c * s.channels()).min(x.len());
        s.process(Input::F32(&x[pos..end]), &mut out).unwrap();
        pos = end;
    }
    s.flush(&mut out).unwrap();
    out
}

#[test]
fn chunked_output_is_bit_identical_to_one_shot() {
    for (fi, fo) in PAIRS {
        for q in QUALITIES {
            for ch in [1usize, 2] {
                let x = noise(5000 * ch, fi as u32);
                let mut s = StreamResampler::new(fi, fo, ch as i64, q).unwrap();
                let whole = run(&mut s, &x, &[usize::MAX / 4]);
                for pattern in [&[1usize][..], &[0, 7, 1, 333], &[160, 161], &[1023]] {
                    let mut s = StreamResampler::new(fi, fo, ch as i64, q).unwrap();
                    assert_eq!(
                        run(&mut s, &x, pattern),
                        whole,
                        "{fi}->{fo} {q:?} {pattern:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn flushed_stream_length_is_input_length_plus_delay() {
    for (fi, fo) in PAIRS {
        for q in QUALITIES {
            let mut s = StreamResampler::new(fi, fo, 1, q).unwrap();
            let n = 4321;
            let delay = s.delay_frames();
            let out = run(&mut s, &noise(n, 3), &[480]);
            let expected = (n as f64 * fo as f64 / fi as f64 + delay + 0.5).floor() as usize;
            assert_eq!(out.len(), expected, "{fi}->{fo} {q:?}");
        }
    }
}

#[test]
fn low_latency_delay_is_at_most_3_ms() {
    let rates = [8000, 16000, 22050, 24000, 44100, 48000];
    for fi in rates {
        for fo in rates {
            let s = StreamResampler::new(fi, fo, 1, Quality::LowLatency).unwrap();
            let ms = s.delay_frames() * 1000.0 / fo as f64;
            assert!(ms > 0.0 && ms <= 3.0, "{fi}->{fo}: {ms} ms");
        }
    }
}

#[test]
fn clip_is_aligned_and_has_the_converted_length() {
    for (fi, fo) in PAIRS {
        for q in QUALITIES {
            // A slow sine is reproduced in place: alignment errors would show at once.
            let n = fi as usize / 5;
            let f = 200.0;
            let x: Vec<f32> = (0..n)
                .map(|i| (std::f64::consts::TAU * f * i as f64 / fi as f64).sin() as f32 * 0.5)
                .collect();
            let y = resample_clip(Input::F32(&x), fi, fo, 1, q).unwrap();
            let want = (n as f64 * fo as f64 / fi as f64 + 0.5).floor() as usize;
            assert_eq!(y.len(), want);
            let edge = fo as usize / 100;
            for (k, &v) in y.iter().enumerate().take(y.len() - edge).skip(edge) {
                let r = (std::f64::consts::TAU * f * k as f64 / fo as f64).sin() * 0.5;
                assert!(
                    (v as f64 - r).abs() < 1e-4,
                    "{fi}->{fo} {q:?} at {k}: {v} vs {r}"
                );
            }
        }
    }
}

#[test]
fn non_finite_and_huge_input_never_panics() {
    for (fi, fo) in PAIRS {
        for q in QUALITIES {
            let mut x = noise(3000, 9);
            x[100] = f32::NAN;
            x[900] = f32::INFINITY;
            x[1700] = f32::NEG_INFINITY;
            x[2500] = f32::MAX;
            let y = resample_clip(Input::F32(&x), fi, fo, 1, q).unwrap();
            assert!(y.iter().all(|v| v.is_finite()));
            assert!(y.iter().all(|v| v.abs() < 2.0 * FLOAT_LIMIT));
        }
    }
}

#[test]
fn int16_input_matches_scaled_float_input() {
    let xi: Vec<i16> = noise(2000, 4)
        .iter()
        .map(|v| (v * 30000.0) as i16)
        .collect();
    let xf: Vec<f32> = xi.iter().map(|&v| v as f32 / 32768.0).collect();
    for q in QUALITIES {
        let a = resample_clip(Input::I16(&xi), 24000, 16000, 1, q).unwrap();
        let b = resample_clip(Input::F32(&xf), 24000, 16000, 1, q).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn bad_parameters_are_errors() {
    assert!(validate(0, 8000, 1).is_err());
    assert!(validate(999, 8000, 1).is_err());
    assert!(validate(8000, -1, 1).is_err());
    assert!(validate(8000, 384_001, 1).is_err());
    assert!(validate(8000, 16000, 0).is_err());
    assert!(validate(8000, 16000, 1).is_ok());
    let mut s = StreamResampler::new(16000, 8000, 2, Quality::High).unwrap();
    let mut out = Vec::new();
    assert!(s.process(Input::F32(&[0.0; 3]), &mut out).is_err());
    assert!(resample_clip(Input::F32(&[0.0; 3]), 16000, 8000, 2, Quality::High).is_err());
}

#[test]
fn reset_forgets_everything() {
    let x = noise(3000, 5);
    let mut fresh = StreamResampler::new(44100, 16000, 1, Quality::LowLatency).unwrap();
    let want = run(&mut fresh, &x, &[441]);
    let mut s = StreamResampler::new(44100, 16000, 1, Quality::LowLatency).unwrap();
    let mut junk = Vec::new();
    s.process(Input::F32(&[0.7; 1234]), &mut junk).unwrap();
    s.reset();
    assert_eq!(run(&mut s, &x, &[441]), want);
}

#[test]
fn unusual_rate_pairs_build_and_run() {
    // Co-prime rates force the cubic-interpolated sinc fallback or very long FFT
    // blocks; they must still work and keep the length contract.
    for (fi, fo, q) in [
        (44100, 44101, Quality::LowLatency),
        (1000, 384_000, Quality::LowLatency),
        (384_000, 383_999, Quality::LowLatency),
        (384_000, 1000, Quality::High),
        (11025, 32000, Quality::High),
    ] {
        let x = noise(2000, 6);
        let y = resample_clip(Input::F32(&x), fi, fo, 1, q).unwrap();
        let want = (2000.0 * fo as f64 / fi as f64 + 0.5).floor() as usize;
        assert_eq!(y.len(), want, "{fi}->{fo}");
    }
}
