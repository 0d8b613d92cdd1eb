//! Native media for a phone caller's WebSocket (Twilio, Telnyx and Plivo
//! media streams), run inside the accepted connection's tokio task.
//!
//! A call's audio never goes through Python:
//! - inbound, [`CallerMedia::route`] takes the provider's `media` frames (base64
//!   G.711 or PCM16 in a `payload` member), decodes them and writes the samples
//!   into the session's microphone ring, resampled (one stateful resampler per
//!   call) when the session's rate differs; mark acknowledgements are consumed
//!   here too and move the listener's position;
//! - outbound, [`CallerMedia::poll`] runs at every 20 ms tick of the shared
//!   [`super::clock`] grid, keeps the provider `lead` ahead of real time from
//!   the session's playback ring (so the first frames of a reply go at once, as
//!   a small start buffer, and the rest at real time), and sends a mark every
//!   few frames so [`CallerShared::heard`] knows what the caller has heard;
//! - when the session's format is the caller's own law (μ-law to `audio/pcmu`),
//!   the rings carry the codes themselves (one per sample slot): nothing is
//!   transcoded either way.
//!
//! The provider's framing comes from Python (`fastvoice.telephony._dialect`)
//! as prefix/suffix strings, so the adapters stay thin. A caller that is not a
//! phone (a browser) uses binary framing: raw PCM16 frames both ways, no JSON
//! and no base64, with marks and clears still as text.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use base64_simd::STANDARD;
use pyo3::prelude::*;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::bridge::Shared;
use super::clock::{next_tick, PumpClock};
use super::media::Codec;
use crate::pcm::f32_to_i16;
use crate::resample::stream::StreamResampler;
use crate::ring::RingBuffer;
use crate::wire;

/// Mark names this stream sends start with this (then generation and number).
const MARK_TAG: &[u8] = b"fv";
/// How early a tick is accepted (timers are rounded to milliseconds).
const TICK_SLACK: Duration = Duration::from_millis(1);
/// Empty ticks before a partial last frame (and the resampler's tail) is sent.
const TAIL_TICKS: u32 = 2;

/// A provider's framing (see `fastvoice.telephony._dialect.Framing`).
pub struct Framing {
    pub media_prefix: Vec<u8>,
    pub media_suffix: Vec<u8>,
    pub mark_prefix: Vec<u8>,
    pub mark_suffix: Vec<u8>,
    pub clear: String,
    pub media_event: Vec<u8>,
    pub ack_event: Vec<u8>,
    /// Audio travels as raw binary frames both ways (a browser), not base64
    /// inside JSON; marks and clears stay text.
    pub binary: bool,
}

/// One side of the audio path: a ring and the format its samples are in.
pub struct RingSide {
    pub ring: Py<RingBuffer>,
    pub rate: u32,
    /// The ring carries the caller's G.711 codes as they are.
    pub codes: bool,
}

pub struct CallerSettings {
    pub framing: Framing,
    /// The caller's wire format (PCM16 may be big-endian: RTP's L16).
    pub codec: Codec,
    pub big_endian: bool,
    pub rate: u32,
    /// Where the caller's audio goes (the session's microphone ring).
    pub mic: RingSide,
    /// Where the caller's audio comes from (the session's playback ring).
    pub play: RingSide,
    pub frame: Duration,
    pub lead: Duration,
    /// Frames between marks (a mark also follows the last frame of a burst).
    pub mark_every: u32,
}

pub struct CallerMedia {
    cfg: CallerSettings,
    shared: Arc<CallerShared>,
    // Inbound scratch (reused: no allocation per frame in steady state).
    bytes: Vec<u8>,
    b64tmp: Vec<u8>,
    pcm_in: Vec<i16>,
    pcm_rs: Vec<i16>,
    f32_tmp: Vec<f32>,
    rs_in: Option<StreamResampler>,
    // Outbound.
    rs_out: Option<StreamResampler>,
    queue: VecDeque<u8>,
    pull: Vec<i16>,
    pcm_out: Vec<i16>,
    codes: Vec<u8>,
    frame_bytes: usize,
    pull_samples: usize,
    /// Burst start and the audio sent in it.
    burst: Option<(Instant, Duration)>,
    /// Ring position where the current segment (since a start or a clear)
    /// began, and caller samples sent in it.
    seg_start: u64,
    seg_sent: u64,
    since_mark: u32,
    mark_seq: u64,
    idle_ticks: u32,
    pending: Option<(Message, usize)>,
    clock: Option<Arc<PumpClock>>,
    registered: Option<u64>,
    due: Instant,
}

impl CallerMedia {
    pub fn new(cfg: CallerSettings) -> Result<(Self, Arc<CallerShared>), String> {
        let start = cfg.play.ring.get().consumed_samples();
        let shared = Arc::new(CallerShared::new(cfg.play.rate, start));
        let per_frame = |rate: u32| (u128::from(rate) * cfg.frame.as_micros() / 1_000_000) as usize;
        let frame_bytes = per_frame(cfg.rate).max(1) * bytes_per_sample(cfg.codec);
        let pull_samples = per_frame(cfg.play.rate).max(1);
        let media = CallerMedia {
            rs_in: resampler(cfg.rate, cfg.mic.rate)?,
            rs_out: resampler(cfg.play.rate, cfg.rate)?,
            bytes: Vec::new(),
            b64tmp: Vec::new(),
            pcm_in: Vec::new(),
            pcm_rs: Vec::new(),
            f32_tmp: Vec::new(),
            queue: VecDeque::with_capacity(frame_bytes * 4),
            pull: vec![0; pull_samples],
            pcm_out: Vec::new(),
            codes: Vec::new(),
            frame_bytes,
            pull_samples,
            burst: None,
            seg_start: start,
            seg_sent: 0,
            since_mark: 0,
            mark_seq: 0,
            idle_ticks: 0,
            pending: None,
            clock: None,
            registered: None,
            due: Instant::now(),
            shared: shared.clone(),
            cfg,
        };
        Ok((media, shared))
    }

    /// Take `frame` if it is caller media or one of our mark acknowledgements.
    pub fn route(&mut self, frame: &[u8]) -> bool {
        let Some(event) = string_member(frame, b"event") else {
            return false;
        };
        if event == self.cfg.framing.ack_event.as_slice() {
            return match string_member(frame, b"name") {
                Some(name) if name.starts_with(MARK_TAG) => {
                    self.shared.ack(name);
                    true
                }
                _ => false, // the application's own mark
            };
        }
        if event != self.cfg.framing.media_event.as_slice() {
            return false;
        }
        let Some(payload) = string_member(frame, b"payload") else {
            return false;
        };
        if wire::decode_payload_into(payload, &mut self.bytes, &mut self.b64tmp).is_err()
            || !self
                .bytes
                .len()
                .is_multiple_of(bytes_per_sample(self.cfg.codec))
        {
            self.shared.bad_frames.fetch_add(1, Ordering::Relaxed);
            return false; // Python reports it
        }
        let bytes = std::mem::take(&mut self.bytes);
        self.take_audio(&bytes);
        self.bytes = bytes;
        true
    }

    /// Take a binary frame as caller audio (a browser sends raw PCM16, no
    /// JSON); `false` (left to Python) without binary framing or for an odd
    /// number of bytes of PCM16.
    pub fn route_binary(&mut self, frame: &[u8]) -> bool {
        if !self.cfg.framing.binary || !frame.len().is_multiple_of(bytes_per_sample(self.cfg.codec))
        {
            if self.cfg.framing.binary {
                self.shared.bad_frames.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        self.take_audio(frame);
        true
    }

    /// Decoded caller audio into the microphone ring, resampled if needed.
    fn take_audio(&mut self, bytes: &[u8]) {
        self.shared.frames_in.fetch_add(1, Ordering::Relaxed);
        let mic = self.cfg.mic.ring.get();
        if self.cfg.mic.codes {
            self.pcm_in.clear();
            self.pcm_in.extend(bytes.iter().map(|&b| i16::from(b)));
            mic.push_i16(&self.pcm_in);
            return;
        }
        decode(self.cfg.codec, self.cfg.big_endian, bytes, &mut self.pcm_in);
        match self.rs_in.as_mut() {
            Some(rs) => {
                self.pcm_rs.clear();
                resample(rs, &self.pcm_in, &mut self.f32_tmp, &mut self.pcm_rs);
                mic.push_i16(&self.pcm_rs);
            }
            None => {
                mic.push_i16(&self.pcm_in);
            }
        }
    }

    /// Move playback audio into the outbound queue until a frame is there.
    fn fill(&mut self) {
        let play = self.cfg.play.ring.get();
        while self.queue.len() < self.frame_bytes {
            let n = play.pop_i16(&mut self.pull[..self.pull_samples]);
            if n == 0 {
                return;
            }
            let pcm = &self.pull[..n];
            if self.cfg.play.codes {
                self.queue.extend(pcm.iter().map(|&s| s as u8));
                continue;
            }
            match self.rs_out.as_mut() {
                Some(rs) => {
                    self.pcm_out.clear();
                    resample(rs, pcm, &mut self.f32_tmp, &mut self.pcm_out);
                    encode(
                        self.cfg.codec,
                        self.cfg.big_endian,
                        &self.pcm_out,
                        &mut self.codes,
                        &mut self.queue,
                    );
                }
                None => encode(
                    self.cfg.codec,
                    self.cfg.big_endian,
                    pcm,
                    &mut self.codes,
                    &mut self.queue,
                ),
            }
        }
    }

    /// The resampler's held-back tail, once playback has run dry.
    fn flush_tail(&mut self) {
        if let Some(rs) = self.rs_out.as_mut() {
            self.f32_tmp.clear();
            if rs.flush(&mut self.f32_tmp).is_ok() {
                self.pcm_out.clear();
                self.pcm_out
                    .extend(self.f32_tmp.iter().map(|&x| f32_to_i16(x)));
                encode(
                    self.cfg.codec,
                    self.cfg.big_endian,
                    &self.pcm_out,
                    &mut self.codes,
                    &mut self.queue,
                );
            }
            rs.reset();
        }
    }

    fn duration(&self, bytes: usize) -> Duration {
        let samples = (bytes / bytes_per_sample(self.cfg.codec)) as u64;
        Duration::from_micros(samples * 1_000_000 / u64::from(self.cfg.rate.max(1)))
    }

    /// The ring position after the caller samples sent so far in this segment.
    fn position(&self) -> u64 {
        let ratio = f64::from(self.cfg.play.rate) / f64::from(self.cfg.rate.max(1));
        self.seg_start + (self.seg_sent as f64 * ratio).round() as u64
    }

    fn offer(&mut self, outbox: &Shared, msg: Message, len: usize, force: bool) -> bool {
        match outbox.offer_own(msg, len, force) {
            Ok(()) => true,
            Err(msg) => {
                self.pending = Some((msg, len));
                false
            }
        }
    }

    fn text(bytes: Vec<u8>) -> Option<(Message, usize)> {
        let len = bytes.len();
        Utf8Bytes::try_from(bytes)
            .ok()
            .map(|t| (Message::Text(t), len))
    }

    fn send_frame(&mut self, outbox: &Shared, take: usize) -> bool {
        if self.cfg.framing.binary {
            let audio = Bytes::copy_from_slice(&self.queue.make_contiguous()[..take]);
            self.queue.drain(..take);
            self.sent_frame(take);
            return self.offer(outbox, Message::Binary(audio), take, false);
        }
        let f = &self.cfg.framing;
        // The one allocation per frame: the message tungstenite takes.
        let mut wire = Vec::with_capacity(
            f.media_prefix.len() + STANDARD.encoded_length(take) + f.media_suffix.len(),
        );
        wire.extend_from_slice(&f.media_prefix);
        STANDARD.encode_append(&self.queue.make_contiguous()[..take], &mut wire);
        wire.extend_from_slice(&f.media_suffix);
        self.queue.drain(..take);
        self.sent_frame(take);
        let Some((msg, len)) = Self::text(wire) else {
            return true;
        };
        self.offer(outbox, msg, len, false)
    }

    fn sent_frame(&mut self, bytes: usize) {
        self.seg_sent += (bytes / bytes_per_sample(self.cfg.codec)) as u64;
        self.since_mark += 1;
        self.shared.frames_out.fetch_add(1, Ordering::Relaxed);
    }

    fn send_mark(&mut self, outbox: &Shared) -> bool {
        self.since_mark = 0;
        self.mark_seq += 1;
        let pos = self.position();
        let generation = self.shared.mark_sent(self.mark_seq, pos);
        let f = &self.cfg.framing;
        let mut frame = Vec::with_capacity(f.mark_prefix.len() + 24 + f.mark_suffix.len());
        frame.extend_from_slice(&f.mark_prefix);
        let _ = write!(frame, "fv{generation}.{}", self.mark_seq);
        frame.extend_from_slice(&f.mark_suffix);
        let Some((msg, len)) = Self::text(frame) else {
            return true;
        };
        self.offer(outbox, msg, len, false)
    }

    fn clear(&mut self, outbox: &Shared) {
        self.queue.clear();
        if let Some(rs) = self.rs_out.as_mut() {
            rs.reset();
        }
        self.pending = None;
        self.burst = None;
        self.since_mark = 0;
        self.idle_ticks = 0;
        let pos = self.cfg.play.ring.get().consumed_samples();
        self.seg_start = pos;
        self.seg_sent = 0;
        self.shared.cleared_at(pos);
        let clear = self.cfg.framing.clear.clone();
        let len = clear.len();
        let _ = outbox.offer_own(Message::Text(Utf8Bytes::from(clear)), len, true);
    }

    /// Send what is due, then wait for the next tick.
    pub fn poll(&mut self, cx: &mut Context<'_>, outbox: &Shared) {
        if self.shared.take_clear() {
            self.clear(outbox);
        }
        let now = Instant::now();
        if now + TICK_SLACK >= self.due {
            let late = now.saturating_duration_since(self.due).as_micros();
            self.shared
                .max_late_us
                .fetch_max(u64::try_from(late).unwrap_or(u64::MAX), Ordering::Relaxed);
            self.send_due(now, outbox);
            self.due = next_tick(now, self.cfg.frame);
        }
        self.wait(cx);
    }

    fn send_due(&mut self, now: Instant, outbox: &Shared) {
        if let Some((msg, len)) = self.pending.take() {
            if !self.offer(outbox, msg, len, false) {
                return;
            }
        }
        loop {
            self.fill();
            if self.queue.len() < self.frame_bytes {
                // Not a whole frame: the reply ended, or the server is behind.
                self.idle_ticks = self.idle_ticks.saturating_add(1);
                if self.idle_ticks == TAIL_TICKS {
                    self.flush_tail();
                }
                if self.queue.is_empty() || self.idle_ticks < TAIL_TICKS {
                    if self.queue.is_empty() && self.since_mark > 0 && !self.send_mark(outbox) {
                        return;
                    }
                    if let Some((t0, sent)) = self.burst {
                        if sent <= now.saturating_duration_since(t0) {
                            self.burst = None; // played out: the next reply starts afresh
                        }
                    }
                    return;
                }
                // Past the tail wait: the partial frame goes now.
            } else {
                self.idle_ticks = 0;
            }
            let (t0, sent) = match self.burst {
                Some(b) => b,
                None => self.start_burst(now),
            };
            let elapsed = now.saturating_duration_since(t0);
            // Half a frame of slack: ticks land a little late by varying amounts, and a threshold on
            // the exact grid would then send two frames on one tick and none on the next.
            if sent >= elapsed + self.cfg.lead + self.cfg.frame / 2 {
                return; // far enough ahead
            }
            let sent = if sent + self.cfg.frame < elapsed {
                // Playback ran dry mid-reply: start over with a fresh lead.
                self.shared.underruns.fetch_add(1, Ordering::Relaxed);
                self.start_burst(now).1
            } else {
                sent
            };
            let take = self.frame_bytes.min(self.queue.len());
            let t0 = self.burst.map_or(now, |b| b.0);
            self.burst = Some((t0, sent + self.duration(take)));
            if !self.send_frame(outbox, take) {
                return;
            }
            if self.since_mark >= self.cfg.mark_every && !self.send_mark(outbox) {
                return;
            }
        }
    }

    /// A reply (or its resumption after an underrun) starts playing now.
    fn start_burst(&mut self, now: Instant) -> (Instant, Duration) {
        self.shared.restart_clock();
        self.burst = Some((now, Duration::ZERO));
        (now, Duration::ZERO)
    }

    fn wait(&mut self, cx: &mut Context<'_>) {
        loop {
            let interval = self.cfg.frame;
            let clock = self.clock.get_or_insert_with(|| PumpClock::get(interval));
            match clock.register(cx.waker(), self.registered) {
                Some(tick) => {
                    self.registered = Some(tick);
                    return;
                }
                None => {
                    self.clock = None;
                    self.registered = None;
                }
            }
        }
    }
}

mod codec;
mod heard;

use codec::{bytes_per_sample, decode, encode, resample, resampler, string_member};
pub use heard::CallerShared;
