//! Unit tests for the wire kernels, against a naive reference base64 codec.

use super::*;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Textbook base64 (RFC 4648 with padding), deliberately simple.
fn ref_b64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn le(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn expected_frame(pcm: &[i16]) -> Vec<u8> {
    format!(
        r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
        ref_b64(&le(pcm))
    )
    .into_bytes()
}

/// Deterministic pseudo-random samples (xorshift), no extra dependencies.
fn noise(n: usize, seed: u32) -> Vec<i16> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as i16
        })
        .collect()
}

#[test]
fn reference_codec_matches_known_vector() {
    assert_eq!(ref_b64(&le(&[0, 1, -1, 32767, -32768])), "AAABAP///38AgA==");
}

#[test]
fn append_frame_is_exact_for_many_lengths() {
    for n in [0, 1, 2, 3, 4, 5, 1535, 1536, 1537, 2400, 4801] {
        let pcm = noise(n, n as u32 + 7);
        let mut out = b"previous".to_vec();
        write_append_frame(&pcm, &mut out);
        assert_eq!(&out[..8], b"previous");
        assert_eq!(out[8..], expected_frame(&pcm)[..], "n = {n}");
        assert_eq!(out.len() - 8, append_frame_len(n * 2));
    }
}

/// `fill_append_frame` into a zeroed buffer of the exact length.
fn filled(pcm: Pcm<'_>) -> Vec<u8> {
    let len = append_frame_len(pcm.byte_len());
    let mut slot = vec![MaybeUninit::new(0u8); len];
    assert_eq!(fill_append_frame(pcm, &mut slot), len);
    slot.iter().map(|b| unsafe { b.assume_init() }).collect()
}

#[test]
fn float_frames_use_the_pcm_rule_across_blocks() {
    for n in [0, 1, 3, 1535, 1536, 1537, 2400, 5000] {
        let f: Vec<f32> = (0..n)
            .map(|i| ((i as f32) * 0.013).sin() * 1.2 - 0.1)
            .collect();
        let as_i16: Vec<i16> = f.iter().map(|&x| crate::pcm::f32_to_i16(x)).collect();
        let mut out = Vec::new();
        write_append_frame_f32(&f, &mut out);
        assert_eq!(out, expected_frame(&as_i16), "n = {n}");

        let d: Vec<f64> = f.iter().map(|&x| f64::from(x)).collect();
        let d_i16: Vec<i16> = d.iter().map(|&x| crate::pcm::f64_to_i16(x)).collect();
        assert_eq!(filled(Pcm::F64(&d)), expected_frame(&d_i16), "f64 n = {n}");
    }
}

#[test]
fn float_conversion_clips_and_maps_nan() {
    let f = [f32::NAN, 2.0, -2.0, 1.0, -1.0, 0.5, f32::INFINITY];
    let mut out = Vec::new();
    write_append_frame_f32(&f, &mut out);
    assert_eq!(
        out,
        expected_frame(&[0, 32767, -32768, 32767, -32768, 16384, 32767])
    );
}

#[test]
fn fill_matches_write_for_every_source() {
    let pcm = noise(3001, 3);
    let bytes = le(&pcm);
    assert_eq!(filled(Pcm::Le(&bytes)), expected_frame(&pcm));
    assert_eq!(filled(Pcm::I16(&pcm)), expected_frame(&pcm));
    // A wrong-sized destination is never overrun.
    let mut short = vec![MaybeUninit::new(0u8); 10];
    assert!(fill_append_frame(Pcm::Le(&bytes), &mut short) <= 10);
}

fn delta_frame(kind: &str, pcm: &[i16]) -> String {
    format!(
        r#"{{"type":"{kind}","event_id":"event_1","response_id":"resp_2","item_id":"item_3","output_index":0,"content_index":1,"delta":"{}"}}"#,
        ref_b64(&le(pcm))
    )
}

#[test]
fn parses_ga_and_beta_deltas() {
    let pcm = noise(2400, 11);
    for (name, kind) in [
        ("response.output_audio.delta", DeltaKind::Ga),
        ("response.audio.delta", DeltaKind::Beta),
    ] {
        let parts = parse_audio_delta(delta_frame(name, &pcm).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(parts.kind, kind);
        assert_eq!(parts.event_id.as_deref(), Some("event_1"));
        assert_eq!(parts.response_id, "resp_2");
        assert_eq!(parts.item_id, "item_3");
        assert_eq!(parts.output_index, 0);
        assert_eq!(parts.content_index, 1);
        assert_eq!(parts.pcm, le(&pcm));
    }
}

#[test]
fn any_order_whitespace_escapes_and_unknown_members() {
    let b64 = ref_b64(&le(&[1, 2, 3, -4, 5, 6])).replace('/', "\\/");
    let frame = format!(
        " {{ \"delta\" : \"{b64}\" ,\n\t\"extra\": {{\"type\": \"response.done\", \"n\": [1, -2.5e3, {{}}, [], null, true, \"\\\"type\\\"\"]}},\r\n \"content_index\": -3, \"item_id\": \"it\\u0041\\\"\\ud83d\\ude00\\/\", \"output_index\": 12,\"response_id\":\"r\", \"\\u0074ype\": \"response.output_audio.delta\"}} "
    );
    let parts = parse_audio_delta(frame.as_bytes()).unwrap().unwrap();
    assert_eq!(parts.item_id, "itA\"\u{1F600}/");
    assert_eq!(parts.event_id, None);
    assert_eq!(parts.content_index, -3);
    assert_eq!(parts.output_index, 12);
    assert_eq!(parts.pcm, le(&[1, 2, 3, -4, 5, 6]));
}

#[test]
fn other_frames_are_none() {
    for frame in [
        r#"{"type":"response.done","response":{}}"#,
        r#"{"type":"response.output_audio_transcript.delta","delta":"hello there"}"#,
        r#"{"x":"\"type\":\"response.audio.delta\"","delta":"AAAA"}"#,
        r#"{"nested":{"type":"response.audio.delta"},"delta":"AAAA"}"#,
        r#"{"type":["response.audio.delta"],"delta":"AAAA"}"#,
        "[]",
        "",
        "not json",
        "{\"type\":\"response.audio.delta\"",
        "\u{1}\u{2}",
    ] {
        let got = parse_audio_delta(frame.as_bytes());
        assert!(
            matches!(got, Ok(None) | Err(WireError::Json { .. })),
            "{frame}: {got:?}"
        );
    }
    assert_eq!(
        parse_audio_delta(br#"{"type":"response.done","response":{}}"#),
        Ok(None)
    );
}

#[test]
fn malformed_deltas_are_errors() {
    let good = delta_frame("response.audio.delta", &[1, 2]);
    let cases: Vec<(String, WireError)> = vec![
        (
            good.replace("\"AQACAA==\"", "\"AQ!CAA==\""),
            WireError::Base64,
        ),
        (
            good.replace("\"AQACAA==\"", "\"AQACAA\""),
            WireError::Base64,
        ),
        (
            good.replace("\"AQACAA==\"", "\"AQAC\""),
            WireError::OddLength(3),
        ),
        (
            good.replace(",\"delta\":\"AQACAA==\"", ""),
            WireError::MissingField("delta"),
        ),
        (
            good.replace("\"item_3\"", "3"),
            wrong("item_id", "a string", "a number"),
        ),
        (
            good.replace("\"item_3\"", "null"),
            wrong("item_id", "a string", "null"),
        ),
        (
            good.replace(":1,", ":1.5,"),
            wrong("content_index", "an integer", "a non-integer number"),
        ),
        (
            good.replace(":1,", ":\"1\","),
            wrong("content_index", "an integer", "a string"),
        ),
        (
            good.replace(":0,", ":99999999999999999999,"),
            WireError::IntRange("output_index"),
        ),
        (
            good.replace("\"AQACAA==\"", "[]"),
            wrong("delta", "a base64 string", "an array"),
        ),
        (
            good.replace("\"event_1\"", "{}"),
            wrong("event_id", "a string", "an object"),
        ),
        (
            good.replace("\"item_3\"", "\"\\ud800\""),
            WireError::BadText("item_id"),
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(parse_audio_delta(frame.as_bytes()), Err(want), "{frame}");
    }
    let truncated = &good.as_bytes()[..good.len() - 3];
    assert!(matches!(
        parse_audio_delta(truncated),
        Err(WireError::Json { .. })
    ));
}

fn wrong(field: &'static str, expected: &'static str, found: &'static str) -> WireError {
    WireError::FieldType {
        field,
        expected,
        found,
    }
}

#[test]
fn null_event_id_and_empty_delta() {
    let frame = r#"{"type":"response.audio.delta","event_id":null,"response_id":"","item_id":"","output_index":0,"content_index":0,"delta":""}"#;
    let parts = parse_audio_delta(frame.as_bytes()).unwrap().unwrap();
    assert_eq!(parts.event_id, None);
    assert!(parts.pcm.is_empty());
}

#[test]
fn every_prefix_of_a_frame_is_handled() {
    let good = delta_frame("response.output_audio.delta", &noise(50, 5));
    for end in 0..good.len() {
        let got = parse_audio_delta(&good.as_bytes()[..end]);
        assert!(matches!(got, Ok(None) | Err(_)), "prefix {end}");
        assert!(got.is_err() || got == Ok(None));
    }
    assert!(parse_audio_delta(good.as_bytes()).unwrap().is_some());
}

#[test]
fn deep_nesting_does_not_overflow() {
    let deep = format!(
        r#"{{"type":"response.audio.delta","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(
        parse_audio_delta(deep.as_bytes()),
        Err(WireError::Json { .. })
    ));
    let ok = format!(
        r#"{{"x":{}1{},"type":"response.audio.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AAA="}}"#,
        "[{\"a\":".repeat(200),
        "}]".repeat(200)
    );
    assert_eq!(
        parse_audio_delta(ok.as_bytes()).unwrap().unwrap().pcm,
        vec![0, 0]
    );
}

#[test]
fn round_trip_through_an_append_frame_payload() {
    let pcm = noise(4000, 99);
    let mut frame = Vec::new();
    write_append_frame(&pcm, &mut frame);
    let text = String::from_utf8(frame).unwrap();
    let b64 = text
        .strip_prefix(r#"{"type":"input_audio_buffer.append","audio":""#)
        .and_then(|t| t.strip_suffix("\"}"))
        .unwrap();
    let delta = format!(
        r#"{{"type":"response.audio.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    );
    assert_eq!(
        parse_audio_delta(delta.as_bytes()).unwrap().unwrap().pcm,
        le(&pcm)
    );
}

/// The transport's path: decode in Rust, wrap with `from_parts`, serve to Python.
#[test]
fn audio_delta_from_parts_serves_the_payload() {
    use pyo3::types::PyBytes;

    let pcm = noise(480, 21);
    let parts = parse_audio_delta(delta_frame("response.output_audio.delta", &pcm).as_bytes())
        .unwrap()
        .unwrap();
    Python::initialize();
    Python::attach(|py| {
        let delta = Py::new(py, AudioDelta::from_parts(parts.clone())).unwrap();
        let d = delta.bind(py);
        let first = d.getattr("pcm").unwrap();
        let again = d.getattr("pcm").unwrap();
        assert!(first.is(&again), "one bytes object, made once");
        assert_eq!(first.cast::<PyBytes>().unwrap().as_bytes(), le(&pcm));
        assert_eq!(d.len().unwrap(), 480);
        let s = |name: &str| d.getattr(name).unwrap().extract::<String>().unwrap();
        assert_eq!(s("type"), "response.output_audio.delta");
        assert_eq!(
            (s("item_id"), s("response_id"), s("event_id")),
            ("item_3".into(), "resp_2".into(), "event_1".into())
        );
        let ms: f64 = d
            .call_method1("duration_ms", (24000,))
            .unwrap()
            .extract()
            .unwrap();
        assert_eq!(ms, 20.0);
    });
}

#[test]
fn decode_payload_into_takes_any_length_escapes_and_reuses_buffers() {
    let (mut out, mut tmp) = (Vec::new(), Vec::new());
    for len in [0usize, 1, 2, 3, 33, 160, 961] {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
        let b64 = ref_b64(&data);
        decode_payload_into(b64.as_bytes(), &mut out, &mut tmp).unwrap();
        assert_eq!(out, data, "length {len}");
        // The same payload with JSON-escaped slashes, as a server may send it.
        let escaped = b64.replace('/', "\\/");
        decode_payload_into(escaped.as_bytes(), &mut out, &mut tmp).unwrap();
        assert_eq!(out, data, "escaped, length {len}");
    }
    let cap = out.capacity();
    decode_payload_into(ref_b64(&[1, 2, 3]).as_bytes(), &mut out, &mut tmp).unwrap();
    assert_eq!((out.as_slice(), out.capacity()), (&[1u8, 2, 3][..], cap));
    for bad in [&b"@@@@"[..], b"QUJ", b"QUJD\\q", b"QU=D"] {
        assert_eq!(
            decode_payload_into(bad, &mut out, &mut tmp),
            Err(WireError::Base64),
            "{bad:?}"
        );
    }
}

#[test]
fn append_frame_bytes_is_the_json_of_base64() {
    let codes: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    write_append_frame_bytes(&codes, &mut out);
    let want = format!(
        r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
        ref_b64(&codes)
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);
}
