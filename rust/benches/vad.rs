//! Criterion benchmarks for the VAD kernel: PCM16 and float32 input, in 20 ms
//! chunks (live capture) and in one 10 s block (a file), on the same synthetic
//! speech-like signal as `benches/bench_vad.py`.

use std::hint::black_box;

use _fastvoice::vad::{Vad, VadConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RATE: usize = 16_000;

/// Ten seconds of 300 Hz + 1.1 kHz partials gated on and off every 0.8 s: the
/// detector sees onsets, hangovers and silences, like a conversation.
fn signal() -> Vec<f32> {
    (0..10 * RATE)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let on = ((t / 0.8) as usize).is_multiple_of(2);
            if on {
                0.3 * (t * 2.0 * std::f32::consts::PI * 300.0).sin()
                    + 0.1 * (t * 2.0 * std::f32::consts::PI * 1_100.0).sin()
            } else {
                0.0
            }
        })
        .collect()
}

fn bench_vad(c: &mut Criterion) {
    let f32s = signal();
    let i16s: Vec<i16> = f32s
        .iter()
        .map(|&x| _fastvoice::pcm::f32_to_i16(x))
        .collect();
    let mut g = c.benchmark_group("vad_10s_16k");
    g.throughput(Throughput::Elements(i16s.len() as u64));
    let mut events = Vec::with_capacity(64);
    g.bench_function("i16_block", |b| {
        b.iter(|| {
            let mut vad = Vad::new(VadConfig::default());
            events.clear();
            vad.push_i16(black_box(&i16s), &mut events);
            black_box(events.len())
        })
    });
    g.bench_function("i16_20ms_chunks", |b| {
        b.iter(|| {
            let mut vad = Vad::new(VadConfig::default());
            events.clear();
            for chunk in i16s.chunks(RATE / 50) {
                vad.push_i16(black_box(chunk), &mut events);
            }
            black_box(events.len())
        })
    });
    g.bench_function("f32_block", |b| {
        b.iter(|| {
            let mut vad = Vad::new(VadConfig::default());
            events.clear();
            vad.push_f32(black_box(&f32s), &mut events);
            black_box(events.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_vad);
criterion_main!(benches);
