use super::*;

fn shared(rate: u32, pending: &[(u64, u64)]) -> CallerShared {
    CallerShared {
        heard: Mutex::new(Heard {
            pending: pending.iter().copied().collect(),
            ..Heard::default()
        }),
        clear: AtomicBool::new(false),
        play_rate: rate,
        frames_in: AtomicU64::new(0),
        frames_out: AtomicU64::new(0),
        marks_acked: AtomicU64::new(0),
        underruns: AtomicU64::new(0),
        bad_frames: AtomicU64::new(0),
        max_late_us: AtomicU64::new(0),
    }
}

#[test]
fn acks_move_the_position_and_stale_or_foreign_names_do_not() {
    let s = shared(8000, &[(1, 800), (2, 1600), (3, 2400)]);
    assert_eq!(s.heard(), 0); // nothing acknowledged yet
    for junk in [
        &b"fv"[..],
        b"fv0",
        b"fv0.",
        b"fvx.1",
        b"fv0.x",
        b"mark-1",
        b"fv1.1",
    ] {
        s.ack(junk); // unparsable, or another generation (cleared since)
    }
    assert_eq!(lock(&s.heard).pending.len(), 3);
    s.ack(b"fv0.2"); // marks are played in order: 2 implies 1
    let h = s.heard();
    assert!((1600..=2400).contains(&h), "{h}");
    assert_eq!(lock(&s.heard).pending.len(), 1);
    s.ack(b"fv0.3");
    assert_eq!(s.heard(), 2400); // nothing pending: no guessing past the last mark
    assert_eq!(s.marks_acked.load(Ordering::Relaxed), 2);
}

#[test]
fn heard_runs_at_real_time_from_the_last_ack_up_to_the_next_mark() {
    let s = shared(8000, &[(2, 8000)]);
    {
        let mut h = lock(&s.heard);
        h.acked = 800;
        h.acked_at = Instant::now().checked_sub(Duration::from_millis(50));
    }
    let h = s.heard();
    assert!((800 + 390..800 + 500).contains(&h), "{h}"); // ~50 ms at 8 kHz past the ack
    lock(&s.heard).acked_at = Instant::now().checked_sub(Duration::from_secs(5));
    assert_eq!(s.heard(), 8000); // capped by the mark not yet acknowledged
}

#[test]
fn string_member_finds_plain_strings_and_leaves_the_rest() {
    let f = br#"{"event": "media","media":{"payload" :"QUJD","track":"inbound"}}"#;
    assert_eq!(string_member(f, b"event"), Some(&b"media"[..]));
    assert_eq!(string_member(f, b"payload"), Some(&b"QUJD"[..]));
    assert_eq!(string_member(f, b"missing"), None);
    assert_eq!(string_member(br#"{"event":1}"#, b"event"), None);
    assert_eq!(string_member(br#"{"event":"a\"b"}"#, b"event"), None);
    assert_eq!(string_member(br#"{"event":"unterminated"#, b"event"), None);
    assert_eq!(string_member(br#"{"event""#, b"event"), None);
    // A value that merely contains the key, before the real member.
    let tricky = br#"{"note":"event","x_event":"no","event":"mark"}"#;
    assert_eq!(string_member(tricky, b"event"), Some(&b"mark"[..]));
}
