//! Parser edge cases for `wav`: every variant built byte by byte.

use super::*;

fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut f = Vec::new();
    for part in [
        &tag.to_le_bytes()[..],
        &channels.to_le_bytes(),
        &rate.to_le_bytes(),
        &(rate * u32::from(align)).to_le_bytes(),
        &align.to_le_bytes(),
        &bits.to_le_bytes(),
    ] {
        f.extend_from_slice(part);
    }
    f
}

fn extensible(sub: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let mut f = fmt(TAG_EXTENSIBLE, channels, rate, bits);
    f.extend_from_slice(&22u16.to_le_bytes());
    f.extend_from_slice(&bits.to_le_bytes());
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&sub.to_le_bytes());
    f.extend_from_slice(&SUBTYPE_TAIL);
    f
}

/// A RIFF/WAVE file from chunks; `size` overrides a chunk's declared size.
fn riff(chunks: &[(&[u8; 4], &[u8], Option<u32>)]) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, data, size) in chunks {
        body.extend_from_slice(*id);
        body.extend_from_slice(&size.unwrap_or(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn pcm16(info: &WavInfo<'_>) -> Vec<i16> {
    let mut out = vec![0u8; info.pcm16_len()];
    decode_into(info, &mut out);
    out.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn message(buf: &[u8]) -> String {
    parse(buf).expect_err("should be rejected").0
}

#[test]
fn header_round_trips() {
    let data = [1u8, 0, 2, 0, 3, 0, 4, 0];
    let mut file = header(8, 16000, 2).to_vec();
    file.extend_from_slice(&data);
    let info = parse(&file).expect("valid");
    assert_eq!(
        (info.sample_rate, info.channels, info.frames()),
        (16000, 2, 2)
    );
    assert_eq!(pcm16(&info), [1, 2, 3, 4]);
}

#[test]
fn every_sample_format_maps_like_the_float_rule() {
    let cases: [(Vec<u8>, &[u8], Vec<i16>); 6] = [
        (fmt(1, 1, 8000, 8), &[0, 128, 255], vec![-32768, 0, 32512]),
        // 24-bit: 0x7FFFFF rounds up and clips; 0x000080 = 0.5 LSB rounds away.
        (
            fmt(1, 1, 8000, 24),
            &[0xFF, 0xFF, 0x7F, 0x80, 0, 0, 0x80, 0xFF, 0xFF, 0, 0, 0x80],
            vec![32767, 1, -1, -32768],
        ),
        (
            fmt(1, 1, 8000, 32),
            &[0xFF, 0x7F, 0, 0, 0, 0x80, 0, 0],
            vec![0, 1],
        ),
        (
            fmt(3, 1, 8000, 32),
            &[0, 0, 0, 0x3F, 0, 0, 0x80, 0x7F, 0, 0, 0xC0, 0x7F],
            vec![16384, 32767, 0],
        ),
        (fmt(3, 1, 8000, 64), &(-0.25f64).to_le_bytes(), vec![-8192]),
        (extensible(1, 1, 8000, 16), &[0x34, 0x12], vec![0x1234]),
    ];
    for (f, data, want) in cases {
        let file = riff(&[(b"fmt ", &f, None), (b"data", data, None)]);
        assert_eq!(pcm16(&parse(&file).expect("valid")), want);
    }
    let f = extensible(3, 1, 8000, 32);
    let file = riff(&[(b"fmt ", &f, None), (b"data", &0.5f32.to_le_bytes(), None)]);
    assert_eq!(parse(&file).expect("valid").encoding, Encoding::Float);
    let f = fmt(7, 1, 8000, 8);
    let file = riff(&[(b"fmt ", &f, None), (b"data", &[0xFF, 0x00], None)]);
    assert_eq!(pcm16(&parse(&file).expect("valid")), [0, -32124]);
}

#[test]
fn extra_chunks_padding_and_order() {
    let f = fmt(1, 1, 24000, 16);
    let file = riff(&[
        (b"LIST", b"odd", None),
        (b"data", &[5, 0, 6, 0], None),
        (b"fact", &[1, 0, 0, 0], None),
        (b"fmt ", &f, None),
    ]);
    assert_eq!(pcm16(&parse(&file).expect("valid")), [5, 6]);
}

#[test]
fn streaming_sizes_run_to_the_end_and_drop_partial_frames() {
    let f = fmt(1, 2, 24000, 16);
    for size in [0, u32::MAX] {
        let mut file = riff(&[
            (b"fmt ", &f, None),
            (b"data", &[1, 0, 2, 0, 3, 0, 4, 0, 9], Some(size)),
        ]);
        file[4..8].copy_from_slice(&size.to_le_bytes());
        // The pad byte after the odd data is appended too: 10 bytes, 2 frames.
        assert_eq!(pcm16(&parse(&file).expect("valid")), [1, 2, 3, 4]);
    }
}

#[test]
fn overrunning_data_is_clamped() {
    let f = fmt(1, 1, 24000, 16);
    let file = riff(&[(b"fmt ", &f, None), (b"data", &[1, 0, 2, 0, 3], Some(1000))]);
    assert_eq!(pcm16(&parse(&file).expect("valid")), [1, 2, 3]);
}

#[test]
fn rejections_name_the_problem() {
    let f = fmt(1, 1, 8000, 16);
    let data: &[u8] = &[0, 0];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"RIFF".to_vec(), "truncated"),
        (b"RIFX\0\0\0\0WAVE".to_vec(), "RIFX"),
        (b"OggS\0\0\0\0WAVE".to_vec(), "not a WAV"),
        (b"RIFF\0\0\0\0AVI ".to_vec(), "not WAVE"),
        (riff(&[(b"data", data, None)]), "missing fmt"),
        (riff(&[(b"fmt ", &f, None)]), "missing data"),
        (
            riff(&[(b"fmt ", &f[..14], None), (b"data", data, None)]),
            "too short",
        ),
        (riff(&[(b"fmt ", &f, Some(400))]), "overruns"),
        (
            riff(&[(b"fmt ", &fmt(2, 1, 8000, 4), None), (b"data", data, None)]),
            "ADPCM",
        ),
        (
            riff(&[(b"fmt ", &fmt(1, 0, 8000, 16), None), (b"data", data, None)]),
            "0 channels",
        ),
        (
            riff(&[(b"fmt ", &fmt(1, 1, 0, 16), None), (b"data", data, None)]),
            "0 Hz",
        ),
        (
            riff(&[(b"fmt ", &fmt(1, 1, 8000, 12), None), (b"data", data, None)]),
            "bit depth",
        ),
        (
            riff(&[(b"fmt ", &fmt(3, 1, 8000, 16), None), (b"data", data, None)]),
            "float bit depth",
        ),
        (
            riff(&[
                (b"fmt ", &extensible(1, 1, 8000, 16)[..30], None),
                (b"data", data, None),
            ]),
            "EXTENSIBLE",
        ),
        (
            riff(&[
                (b"fmt ", &extensible(2, 1, 8000, 16), None),
                (b"data", data, None),
            ]),
            "ADPCM",
        ),
    ];
    for (file, want) in cases {
        let msg = message(&file);
        assert!(msg.contains(want), "{msg:?} should mention {want:?}");
    }
    let mut bad_align = f.clone();
    bad_align[12] = 3;
    let msg = message(&riff(&[(b"fmt ", &bad_align, None), (b"data", data, None)]));
    assert!(msg.contains("block align"), "{msg}");
    let mut bad_guid = extensible(1, 1, 8000, 16);
    bad_guid[30] ^= 1;
    let msg = message(&riff(&[(b"fmt ", &bad_guid, None), (b"data", data, None)]));
    assert!(msg.contains("GUID"), "{msg}");
}

#[test]
fn every_prefix_and_random_mutation_is_total() {
    let f = extensible(3, 2, 48000, 32);
    let file = riff(&[
        (b"LIST", b"abc", None),
        (b"fmt ", &f, None),
        (b"data", &[0x11; 64], None),
    ]);
    for end in 0..file.len() {
        let _ = parse(&file[..end]).map(|info| pcm16(&info));
    }
    // A small xorshift so the test is deterministic without a dependency.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        let mut m = file.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % m.len() as u64) as usize;
            m[at] = (state >> 32) as u8;
        }
        if let Ok(info) = parse(&m) {
            assert!(info.data.len() <= m.len());
            assert_eq!(
                pcm16(&info).len(),
                info.frames() * usize::from(info.channels)
            );
        }
    }
}
