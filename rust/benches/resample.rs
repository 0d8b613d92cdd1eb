//! Criterion benchmarks for the resample kernels, without Python in the way.
//!
//! `stream 20ms` is one 20 ms float32 chunk of an ongoing stream (the voice-agent
//! case, same as `benches/bench_resample.py`), `clip 1s` a whole one-second clip.
//! Run: `cargo bench --bench resample` (with LD_LIBRARY_PATH set, see DEVELOPERS.md).

use std::hint::black_box;

use _fastvoice::resample::{resample_clip, Input, Quality, StreamResampler};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const PAIRS: [(i64, i64); 4] = [
    (48000, 24000),
    (24000, 16000),
    (16000, 24000),
    (44100, 24000),
];

fn tones(rate: i64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            (0.3 * (std::f64::consts::TAU * 1000.0 * t).sin()
                + 0.2 * (std::f64::consts::TAU * 3000.0 * t).sin()) as f32
        })
        .collect()
}

fn quality_name(q: Quality) -> &'static str {
    q.as_str()
}

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample stream 20ms");
    for (fi, fo) in PAIRS {
        let chunk = tones(fi, fi as usize / 50);
        g.throughput(Throughput::Elements(chunk.len() as u64));
        for q in [Quality::High, Quality::LowLatency] {
            let mut s = StreamResampler::new(fi, fo, 1, q).expect("valid parameters");
            let mut out = Vec::with_capacity(4096);
            g.bench_function(format!("{fi}->{fo} {}", quality_name(q)), |b| {
                b.iter(|| {
                    out.clear();
                    s.process(Input::F32(black_box(&chunk)), &mut out)
                        .expect("resampling succeeds");
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

fn clip(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample clip 1s");
    for (fi, fo) in PAIRS {
        let x = tones(fi, fi as usize);
        g.throughput(Throughput::Elements(x.len() as u64));
        for q in [Quality::High, Quality::LowLatency] {
            g.bench_function(format!("{fi}->{fo} {}", quality_name(q)), |b| {
                b.iter(|| {
                    resample_clip(Input::F32(black_box(&x)), fi, fo, 1, q)
                        .expect("resampling succeeds")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(group, stream, clip);
criterion_main!(group);
