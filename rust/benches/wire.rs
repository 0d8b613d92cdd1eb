//! Criterion benchmarks for the wire kernels: building append frames and
//! parsing audio delta frames (100 ms at 24 kHz), with serde_json + base64-simd
//! as the obvious alternative for the parse side.

use std::borrow::Cow;
use std::hint::black_box;

use _fastvoice::ring::{Overflow, SampleRing};
use _fastvoice::wire::{parse_audio_delta, write_append_frame, write_append_frame_f32};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: usize = 2400;

fn samples() -> Vec<i16> {
    let mut x = 0x9E37_79B9u32;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as i16
        })
        .collect()
}

fn delta_frame(pcm: &[i16]) -> Vec<u8> {
    let mut append = Vec::new();
    write_append_frame(pcm, &mut append);
    let text = String::from_utf8(append).expect("ascii");
    let b64 = text
        .trim_start_matches(r#"{"type":"input_audio_buffer.append","audio":""#)
        .trim_end_matches("\"}");
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_CdRkh0xZ4bDq3mIk1Oxz3","response_id":"resp_CdRkgzMF0Pn8s1vJ8pTqQ","item_id":"item_CdRkgzVb8cXWkyL1pv2Zs","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    )
    .into_bytes()
}

#[derive(serde::Deserialize)]
struct SerdeDelta<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    item_id: Cow<'a, str>,
    #[serde(borrow)]
    response_id: Cow<'a, str>,
    output_index: i64,
    content_index: i64,
    #[serde(borrow)]
    delta: Cow<'a, str>,
}

fn serde_parse(frame: &[u8]) -> Option<(String, Vec<u8>)> {
    let d: SerdeDelta<'_> = serde_json::from_slice(frame).ok()?;
    if d.kind != "response.output_audio.delta" {
        return None;
    }
    black_box((&d.event_id, d.output_index, d.content_index, &d.response_id));
    let pcm = base64_simd::STANDARD
        .decode_to_vec(d.delta.as_bytes())
        .ok()?;
    Some((d.item_id.into_owned(), pcm))
}

fn benches(c: &mut Criterion) {
    let pcm = samples();
    let floats: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let frame = delta_frame(&pcm);

    let mut g = c.benchmark_group("append_frame_100ms");
    g.throughput(Throughput::Bytes((N * 2) as u64));
    let mut out = Vec::with_capacity(8192);
    g.bench_function("write_append_frame(i16)", |b| {
        b.iter(|| {
            out.clear();
            write_append_frame(black_box(&pcm), &mut out);
            out.len()
        })
    });
    g.bench_function("write_append_frame_f32", |b| {
        b.iter(|| {
            out.clear();
            write_append_frame_f32(black_box(&floats), &mut out);
            out.len()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("parse_audio_delta_100ms");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("fastvoice scanner", |b| {
        b.iter(|| {
            parse_audio_delta(black_box(&frame))
                .ok()
                .flatten()
                .map(|p| p.pcm.len())
        })
    });
    g.bench_function("serde_json (borrowed) + base64-simd", |b| {
        b.iter(|| serde_parse(black_box(&frame)).map(|p| p.1.len()))
    });
    g.finish();

    // The ring's per-side mutexes against bare rtrb halves (what they cost
    // when uncontended), one 20 ms chunk in and out.
    let chunk: Vec<i16> = pcm[..480].to_vec();
    let mut out = vec![0i16; 480];
    let mut g = c.benchmark_group("ring_20ms_chunk");
    let ring = SampleRing::<i16>::new(24_000, Overflow::DropOldest);
    g.bench_function("SampleRing write + read_into", |b| {
        b.iter(|| {
            let _ = ring.write(black_box(&chunk));
            ring.read_into(&mut out)
        })
    });
    let (mut producer, mut consumer) = rtrb::RingBuffer::<i16>::new(24_000);
    g.bench_function("bare rtrb push/pop slices", |b| {
        b.iter(|| {
            let _ = producer.push_partial_slice(black_box(&chunk));
            consumer.pop_partial_slice(&mut out).0.len()
        })
    });
    g.finish();

    let ours = parse_audio_delta(&frame).ok().flatten().map(|p| p.pcm);
    assert_eq!(ours, serde_parse(&frame).map(|p| p.1));
}

criterion_group!(group, benches);
criterion_main!(group);
