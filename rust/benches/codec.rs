//! Criterion benchmarks for the codec kernels, on the same inputs as
//! `benches/bench_codec.py` so the Python-level numbers can be split into
//! kernel time and call overhead.

use std::hint::black_box;

use _fastvoice::{g711, pcm, wav};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Deterministic speech-like test signal in [-1, 1): a sum of partials under a
/// 4 Hz envelope. Values spread over the whole range, which is what matters
/// for the conversion kernels (no branch is data-dependent except clipping).
fn signal(n: usize, channels: usize) -> Vec<f32> {
    (0..n * channels)
        .map(|i| {
            let t = (i / channels) as f32 / 24_000.0;
            let env = (1.0 + (2.0 * std::f32::consts::PI * 4.0 * t).sin()) * 0.5;
            let tone =
                (t * 2_210.0).sin() * 0.5 + (t * 5_170.0 + (i % channels) as f32).sin() * 0.3;
            env * tone
        })
        .collect()
}

fn pcm16(x: &[f32]) -> Vec<i16> {
    x.iter().map(|&v| pcm::f32_to_i16(v)).collect()
}

fn wav_file(tag: u16, bits: u16, channels: u16, rate: u32, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut f = Vec::with_capacity(44 + data.len());
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes());
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    f.extend_from_slice(&align.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f.extend_from_slice(b"data");
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(data);
    f
}

fn bench_wav(c: &mut Criterion) {
    let mono: Vec<u8> = pcm16(&signal(240_000, 1))
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let stereo: Vec<u8> = signal(480_000, 2)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let cases = [
        ("24k_mono_pcm16_10s", wav_file(1, 16, 1, 24_000, &mono)),
        ("48k_stereo_f32_10s", wav_file(3, 32, 2, 48_000, &stereo)),
    ];
    let mut g = c.benchmark_group("wav_decode");
    for (name, file) in &cases {
        let info = wav::parse(file).expect("valid benchmark file");
        let mut out = vec![0u8; info.pcm16_len()];
        g.throughput(Throughput::Bytes(file.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let info = wav::parse(black_box(file)).expect("valid");
                wav::decode_into(&info, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn bench_pcm(c: &mut Criterion) {
    let x = signal(4_800, 1);
    let mut out = vec![0u8; x.len() * 2];
    let mut g = c.benchmark_group("to_pcm16_100ms_f32");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.bench_function("fast (vectorised)", |b| {
        b.iter(|| pcm::f32_to_pcm16_bytes(black_box(&x), &mut out))
    });
    // The per-sample rule with libm `round`, to show what the fast path buys.
    g.bench_function("scalar round", |b| {
        b.iter(|| {
            for (o, &v) in out.chunks_exact_mut(2).zip(black_box(&x)) {
                o.copy_from_slice(&pcm::f32_to_i16(v).to_le_bytes());
            }
        })
    });
    g.finish();

    let pcm = pcm16(&x);
    let mut f = vec![0f32; pcm.len()];
    c.bench_function("from_pcm16_100ms_f32", |b| {
        b.iter(|| pcm::pcm16_to_f32(black_box(&pcm), &mut f))
    });

    let stereo = pcm16(&signal(48_000, 2));
    let mut mono = vec![0i16; 48_000];
    c.bench_function("downmix_1s_48k_stereo_i16", |b| {
        b.iter(|| pcm::downmix_i16(black_box(&stereo), 2, &mut mono))
    });
}

fn bench_g711(c: &mut Criterion) {
    let phone = pcm16(&signal(8_000, 1));
    let mut codes = vec![0u8; phone.len()];
    let mut back = vec![0u8; phone.len() * 2];
    let mut g = c.benchmark_group("g711");
    for n in [160usize, 8_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ulaw_encode", n), &n, |b, &n| {
            b.iter(|| g711::ulaw_encode_into(black_box(&phone[..n]), &mut codes[..n]))
        });
        g.bench_with_input(BenchmarkId::new("ulaw_decode", n), &n, |b, &n| {
            b.iter(|| g711::ulaw_decode_into(black_box(&codes[..n]), &mut back[..2 * n]))
        });
        g.bench_with_input(BenchmarkId::new("alaw_encode", n), &n, |b, &n| {
            b.iter(|| g711::alaw_encode_into(black_box(&phone[..n]), &mut codes[..n]))
        });
    }
    g.finish();
}

criterion_group!(group, bench_wav, bench_pcm, bench_g711);
criterion_main!(group);
