//! Kernel tests on synthetic signals whose boundaries are known exactly.

use super::*;

const RATE: u32 = 16_000;

fn tone(seconds: f64, amp: f64) -> Vec<i16> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            ((2.0 * std::f64::consts::PI * 300.0 * t).sin() * amp * 32767.0) as i16
        })
        .collect()
}

fn silence(seconds: f64) -> Vec<i16> {
    vec![0; (seconds * f64::from(RATE)) as usize]
}

/// Deterministic white noise (xorshift), uniform in [-amp, amp].
fn noise(seconds: f64, amp: f64, seed: u64) -> Vec<i16> {
    let mut x = seed.max(1);
    (0..(seconds * f64::from(RATE)) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            (u * amp * 32767.0) as i16
        })
        .collect()
}

fn run(vad: &mut Vad, data: &[i16], chunk: usize) -> Vec<VadEvent> {
    let mut events = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        vad.push_i16(c, &mut events);
    }
    events.extend(vad.flush());
    events
}

fn cfg() -> VadConfig {
    VadConfig {
        threshold_db: -40.0,
        min_speech_ms: 100,
        hangover_ms: 700,
        prefix_padding_ms: 200,
        ..VadConfig::default()
    }
}

#[test]
fn tone_bursts_give_exact_boundaries() {
    let data = [
        silence(0.5),
        tone(0.4, 0.3),
        silence(1.0),
        tone(0.05, 0.3),
        silence(1.0),
    ]
    .concat();
    let events = run(&mut Vad::new(cfg()), &data, 320);
    let start = |s: f64| (s * f64::from(RATE)) as u64;
    assert_eq!(
        events,
        vec![
            VadEvent {
                kind: EventKind::Start,
                sample: start(0.5),
                padded_sample: start(0.3)
            },
            VadEvent {
                kind: EventKind::Stop,
                sample: start(0.9),
                padded_sample: start(1.6)
            },
        ]
    );
}

#[test]
fn chunking_does_not_change_events() {
    let data = [silence(0.3), tone(0.7, 0.2), silence(0.9), tone(0.5, 0.5)].concat();
    let reference = run(&mut Vad::new(cfg()), &data, data.len());
    assert_eq!(reference.len(), 4);
    for chunk in [1, 7, 160, 319, 321, 4096] {
        assert_eq!(
            run(&mut Vad::new(cfg()), &data, chunk),
            reference,
            "chunk {chunk}"
        );
    }
}

#[test]
fn floats_match_their_pcm16_copy() {
    let data = [silence(0.2), tone(0.5, 0.3), silence(0.8)].concat();
    let floats: Vec<f32> = data.iter().map(|&s| crate::pcm::i16_to_f32(s)).collect();
    let mut vad = Vad::new(cfg());
    let mut events = Vec::new();
    vad.push_f32(&floats, &mut events);
    events.extend(vad.flush());
    assert_eq!(events, run(&mut Vad::new(cfg()), &data, 1000));
}

#[test]
fn white_noise_is_not_speech_at_any_level() {
    for amp in [0.001, 0.05, 0.5] {
        let events = run(&mut Vad::new(cfg()), &noise(3.0, amp, 7), 480);
        assert!(events.is_empty(), "amp {amp}: {events:?}");
    }
}

#[test]
fn stationary_hum_stops_counting_after_one_noise_window() {
    // A loud, steady tone looks like a vowel at first, then the floor catches up.
    let mut vad = Vad::new(VadConfig {
        noise_window_ms: 1000,
        ..cfg()
    });
    let events = run(&mut vad, &tone(6.0, 0.3), 320);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].kind, EventKind::Stop);
    assert!(events[1].sample <= u64::from(RATE) * 2, "{events:?}");
}

#[test]
fn speech_over_noise_is_found_once_the_floor_is_learnt() {
    let mut data = noise(4.0, 0.01, 3);
    let burst = tone(0.6, 0.3);
    let at = 2 * RATE as usize;
    for (d, s) in data[at..].iter_mut().zip(&burst) {
        *d = d.saturating_add(*s);
    }
    let events = run(&mut Vad::new(cfg()), &data, 320);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].sample, at as u64);
    assert_eq!(events[1].sample, (at + burst.len()) as u64);
}

#[test]
fn silence_and_empty_input_give_nothing() {
    assert!(run(&mut Vad::new(cfg()), &silence(2.0), 320).is_empty());
    assert!(run(&mut Vad::new(cfg()), &[], 320).is_empty());
}

#[test]
fn prefix_padding_never_overlaps_the_previous_segment() {
    let c = VadConfig {
        hangover_ms: 100,
        prefix_padding_ms: 500,
        ..cfg()
    };
    let data = [tone(0.3, 0.3), silence(0.2), tone(0.3, 0.3)].concat();
    let events = run(&mut Vad::new(c), &data, 320);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0].padded_sample, 0);
    assert_eq!(events[2].padded_sample, events[1].padded_sample);
}

#[test]
fn flush_closes_the_open_segment_at_the_stream_end_and_resets() {
    let mut vad = Vad::new(cfg());
    let data = [silence(0.2), tone(0.5, 0.3), vec![0; 77]].concat();
    let mut events = Vec::new();
    vad.push_i16(&data, &mut events);
    assert!(vad.in_speech());
    let stop = vad.flush().expect("open segment");
    assert_eq!(stop.padded_sample, data.len() as u64);
    assert_eq!(stop.sample, (0.7 * f64::from(RATE)) as u64);
    assert_eq!(vad.position(), 0);
    assert!(!vad.in_speech());
    assert!(vad.flush().is_none());
}

#[test]
fn bad_settings_are_rejected() {
    for bad in [
        VadConfig {
            sample_rate: 0,
            ..cfg()
        },
        VadConfig {
            frame_ms: 25,
            ..cfg()
        },
        VadConfig {
            threshold_db: 3.0,
            ..cfg()
        },
        VadConfig {
            snr_db: -1.0,
            ..cfg()
        },
        VadConfig {
            max_zcr: 1.5,
            ..cfg()
        },
        VadConfig {
            hangover_ms: 100_000,
            ..cfg()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    assert!(cfg().validate().is_ok());
}
