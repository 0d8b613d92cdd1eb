//! What the caller has heard: mark bookkeeping shared between the caller
//! stream's task (which sends marks and reads acknowledgements) and Python
//! (which reads [`CallerShared::heard`] to truncate at a barge-in).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::time::Instant;

use super::MARK_TAG;
use crate::sync::lock;

#[derive(Default)]
struct Heard {
    generation: u64,
    /// Marks sent and not acknowledged: (number, ring position after them).
    pending: VecDeque<(u64, u64)>,
    /// Position of the last acknowledged mark, and when it was acknowledged.
    acked: u64,
    acked_at: Option<Instant>,
}

/// What Python reads and asks of a caller stream (`fastvoice._fastvoice.CallerStream`).
pub struct CallerShared {
    heard: Mutex<Heard>,
    clear: AtomicBool,
    play_rate: u32,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub marks_acked: AtomicU64,
    pub underruns: AtomicU64,
    /// Inbound media frames whose payload could not be decoded (left to Python).
    pub bad_frames: AtomicU64,
    /// The latest any tick was served after it was due, in microseconds.
    pub max_late_us: AtomicU64,
}

impl CallerShared {
    /// Counters at zero; the caller has heard the playback ring up to `start`.
    pub fn new(play_rate: u32, start: u64) -> Self {
        CallerShared {
            heard: Mutex::new(Heard {
                acked: start,
                ..Heard::default()
            }),
            clear: AtomicBool::new(false),
            play_rate,
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            marks_acked: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            max_late_us: AtomicU64::new(0),
        }
    }

    /// The caller's position in the playback ring's `consumed` numbering: the
    /// last acknowledged mark, plus the time since at real time, never past the
    /// next mark not yet acknowledged.
    pub fn heard(&self) -> u64 {
        let h = lock(&self.heard);
        let Some(at) = h.acked_at else {
            return h.acked;
        };
        let cap = h.pending.front().map_or(h.acked, |&(_, pos)| pos);
        let since = Instant::now().saturating_duration_since(at).as_secs_f64();
        let more = (since * f64::from(self.play_rate)) as u64;
        (h.acked + more).min(cap.max(h.acked))
    }

    /// Ask the task to drop what it holds, send the provider's clear and forget
    /// pending marks (their late acknowledgements are ignored).
    pub fn request_clear(&self) {
        self.clear.store(true, Ordering::Release);
    }

    /// Whether Python asked for a clear since the last call (and forget that it did).
    pub(super) fn take_clear(&self) -> bool {
        self.clear.swap(false, Ordering::AcqRel)
    }

    /// Mark `seq` was sent at ring position `pos`; returns the generation to name it with.
    pub(super) fn mark_sent(&self, seq: u64, pos: u64) -> u64 {
        let mut h = lock(&self.heard);
        h.pending.push_back((seq, pos));
        h.generation
    }

    /// Everything queued was dropped at ring position `pos`: marks sent so far
    /// will never be acknowledged for audio that plays.
    pub(super) fn cleared_at(&self, pos: u64) {
        let mut h = lock(&self.heard);
        h.generation += 1;
        h.pending.clear();
        h.acked = pos;
        h.acked_at = None;
    }

    /// A reply (or its resumption after an underrun) starts playing now: the
    /// time since an earlier acknowledgement says nothing about it.
    pub(super) fn restart_clock(&self) {
        lock(&self.heard).acked_at = None;
    }

    /// An acknowledgement from the caller of the mark named `name`.
    pub(super) fn ack(&self, name: &[u8]) {
        // Names are "fv<generation>.<number>".
        let Some(rest) = name.strip_prefix(MARK_TAG) else {
            return;
        };
        let mut parts = rest.splitn(2, |&b| b == b'.');
        let (Some(g), Some(n)) = (parts.next().and_then(num), parts.next().and_then(num)) else {
            return;
        };
        let mut h = lock(&self.heard);
        if g != h.generation {
            return; // cleared since: played or not, that audio is gone
        }
        while let Some(&(seq, pos)) = h.pending.front() {
            if seq > n {
                break;
            }
            h.pending.pop_front();
            h.acked = pos;
            h.acked_at = Some(Instant::now());
        }
        self.marks_acked.fetch_add(1, Ordering::Relaxed);
    }
}

fn num(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn shared(rate: u32, pending: &[(u64, u64)]) -> CallerShared {
        let s = CallerShared::new(rate, 0);
        lock(&s.heard).pending = pending.iter().copied().collect();
        s
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
}
