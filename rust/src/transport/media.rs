//! Native audio I/O for one connection, run inside its tokio task:
//!
//! - [`OutputSink`] writes the assistant's audio deltas straight into a
//!   playback [`RingBuffer`] (base64 and G.711 decoded here), so steady
//!   playback costs Python nothing per chunk: no message object, no loop
//!   wake-up. Python hears once per audio item (the item's first delta, its
//!   audio already routed) and reads the sink's accounting when it truncates.
//! - [`InputPump`] sends what a microphone [`RingBuffer`] holds as
//!   `input_audio_buffer.append` frames from the connection's task at each
//!   tick (shared by all pumps, see [`super::clock`]), so a live microphone (a
//!   sounddevice callback writing into the ring) never goes through the
//!   asyncio loop either.
//!
//! Both keep their scratch buffers between chunks: steady-state routing
//! allocates only the outgoing frame tungstenite takes ownership of.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::audio::AudioParts;
use super::bridge::Shared;
use super::clock::{next_tick, PumpClock};
use crate::g711::{alaw_encode_into, ulaw_encode_into, ALAW_DECODE, ULAW_DECODE};
use crate::ring::RingBuffer;
use crate::sync::lock;
use crate::wire::{self, RawDelta, Text};

/// The wire encoding of the audio a sink or pump handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Pcm16,
    Ulaw,
    Alaw,
}

impl Codec {
    /// Accepts our short names and the Realtime format names (GA and beta).
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "pcm16" | "audio/pcm" => Some(Codec::Pcm16),
            "pcmu" | "audio/pcmu" | "g711_ulaw" => Some(Codec::Ulaw),
            "pcma" | "audio/pcma" | "g711_alaw" => Some(Codec::Alaw),
            _ => None,
        }
    }
}

/// The audio item the sink is currently filling the ring with.
#[derive(Clone, Debug)]
pub struct ItemState {
    pub item_id: String,
    pub content_index: i64,
    pub response_id: String,
    /// Wire bytes of this item received (PCM16: 2 per sample; G.711: 1).
    pub received_bytes: u64,
    /// The ring's `consumed` count at which the item's first sample is read
    /// (`written - skipped` when it went in: earlier cuts are not played).
    pub ring_start: u64,
}

/// Responses whose further deltas are dropped (interrupted ones); a few are
/// enough, since a server streams one response at a time.
const DISCARD_KEEP: usize = 8;

#[derive(Default)]
struct SinkInner {
    current: Option<ItemState>,
    discard: VecDeque<String>,
    dropped_bytes: u64,
    bytes: Vec<u8>,
    tmp: Vec<u8>,
    pcm: Vec<i16>,
}

/// What the driver does with a text frame after offering it to the sink.
pub enum Route {
    /// Not an audio delta (or one the sink cannot decode): deliver as usual.
    NotAudio,
    /// Written into the ring (or dropped as interrupted): deliver nothing.
    Taken,
    /// The first delta of a new item, already in the ring: deliver these parts
    /// (with empty audio) so Python learns the item started.
    First(AudioParts),
}

pub struct OutputSink {
    ring: Py<RingBuffer>,
    codec: Codec,
    /// Store G.711 codes as they are, one per sample slot, for a reader that
    /// forwards them (a phone line speaking the same law): no transcoding.
    codes: bool,
    inner: Mutex<SinkInner>,
    /// Wire bytes of every delta this sink decoded (routed, interrupted or
    /// refused by the ring): the same count the Python path keeps in
    /// `session.audio_bytes_received`. Shared by the connection's sinks.
    received: Arc<AtomicU64>,
}

fn same(t: &Text<'_>, s: &str) -> bool {
    if t.escaped {
        t.to_owned_string().is_ok_and(|o| o == s)
    } else {
        t.raw == s.as_bytes()
    }
}

impl OutputSink {
    pub fn new(ring: Py<RingBuffer>, codec: Codec, codes: bool, received: Arc<AtomicU64>) -> Self {
        OutputSink {
            ring,
            codec,
            codes: codes && codec != Codec::Pcm16,
            inner: Mutex::new(SinkInner::default()),
            received,
        }
    }

    fn ring(&self) -> &RingBuffer {
        self.ring.get()
    }

    /// Route `frame` if it is an audio delta this sink can decode.
    pub fn route(&self, frame: &[u8]) -> Route {
        // Malformed deltas go to Python as text, which reports them.
        let Ok(Some(raw)) = wire::scan_delta(frame) else {
            return Route::NotAudio;
        };
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        // Decoded before the discard check, so interrupted deltas are counted
        // exactly (as the Python path counts them) and invalid ones not at all.
        if wire::decode_payload_into(raw.delta, &mut inner.bytes, &mut inner.tmp).is_err() {
            return Route::NotAudio;
        }
        if self.codec == Codec::Pcm16 && !inner.bytes.len().is_multiple_of(2) {
            return Route::NotAudio;
        }
        let n = inner.bytes.len() as u64;
        if inner.discard.iter().any(|r| same(&raw.response_id, r)) {
            inner.dropped_bytes += n;
            self.received.fetch_add(n, Ordering::Relaxed);
            return Route::Taken;
        }
        inner.pcm.clear();
        match self.codec {
            _ if self.codes => inner.pcm.extend(inner.bytes.iter().map(|&b| i16::from(b))),
            Codec::Pcm16 => {
                let samples = inner.bytes.chunks_exact(2);
                inner
                    .pcm
                    .extend(samples.map(|b| i16::from_le_bytes([b[0], b[1]])));
            }
            Codec::Ulaw => inner
                .pcm
                .extend(inner.bytes.iter().map(|&b| ULAW_DECODE[usize::from(b)])),
            Codec::Alaw => inner
                .pcm
                .extend(inner.bytes.iter().map(|&b| ALAW_DECODE[usize::from(b)])),
        }
        let continuing = inner.current.as_ref().is_some_and(|c| {
            c.content_index == raw.content_index && same(&raw.item_id, &c.item_id)
        });
        let first = if continuing {
            None
        } else {
            match start_item(&raw, self.ring().read_position_of_next()) {
                Some((state, parts)) => {
                    inner.current = Some(state);
                    Some(parts)
                }
                None => return Route::NotAudio, // ids that are not valid UTF-8
            }
        };
        if let Some(cur) = inner.current.as_mut() {
            cur.received_bytes += n;
        }
        self.received.fetch_add(n, Ordering::Relaxed);
        let stored = self.ring().push_i16(&inner.pcm);
        if stored < inner.pcm.len() {
            // Refused by the ring's policy; counted in wire bytes like the rest.
            let per_sample = if self.codec == Codec::Pcm16 { 2 } else { 1 };
            inner.dropped_bytes += ((inner.pcm.len() - stored) * per_sample) as u64;
        }
        match first {
            Some(parts) => Route::First(parts),
            None => Route::Taken,
        }
    }

    /// The item being played, if any.
    pub fn state(&self) -> Option<ItemState> {
        lock(&self.inner).current.clone()
    }

    /// End the current item now: drop the rest of its response (and of
    /// `also_discard`), clear the ring, return the item's accounting. Done
    /// under the sink lock so no delta can land in the ring after the clear.
    pub fn cut(&self, also_discard: Option<&str>) -> Option<ItemState> {
        let mut inner = lock(&self.inner);
        let cur = inner.current.take();
        let discard = &mut inner.discard;
        for id in cur
            .as_ref()
            .map(|c| c.response_id.as_str())
            .into_iter()
            .chain(also_discard)
        {
            if !discard.iter().any(|d| d == id) {
                if discard.len() == DISCARD_KEEP {
                    discard.pop_front();
                }
                discard.push_back(id.to_owned());
            }
        }
        self.ring().discard_all();
        cur
    }

    /// Forget the current item (e.g. after a reconnect); the ring is untouched.
    pub fn reset(&self) {
        lock(&self.inner).current = None;
    }

    /// Wire bytes of audio not written: deltas of interrupted responses and
    /// samples the ring's policy refused.
    pub fn dropped_bytes(&self) -> u64 {
        lock(&self.inner).dropped_bytes
    }
}

fn start_item(raw: &RawDelta<'_>, ring_start: u64) -> Option<(ItemState, AudioParts)> {
    let item_id = raw.item_id.to_owned_string().ok()?;
    let response_id = raw.response_id.to_owned_string().ok()?;
    let event_id = match raw.event_id {
        Some(t) => Some(t.to_owned_string().ok()?),
        None => None,
    };
    let state = ItemState {
        item_id: item_id.clone(),
        content_index: raw.content_index,
        response_id: response_id.clone(),
        received_bytes: 0,
        ring_start,
    };
    let parts = AudioParts {
        kind: raw.kind,
        event_id,
        item_id,
        response_id,
        output_index: raw.output_index,
        content_index: raw.content_index,
        pcm: Vec::new(),
    };
    Some((state, parts))
}

/// Input audio the pump sent since the session last took it: what a server
/// that dies before committing never got, re-sent after a reconnect. Bounded
/// by `limit` wire bytes (`None`: not kept); whole chunks go oldest first and
/// are counted in `evicted`, so a session knows exactly what it lost. The bytes
/// live in one deque (and the chunk lengths in another) whose capacity is
/// reused, so steady-state retention allocates nothing per chunk.
#[derive(Default)]
pub struct Retained {
    pub limit: Option<usize>,
    bytes: VecDeque<u8>,
    lens: VecDeque<usize>,
    evicted: u64,
}

impl Retained {
    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) {
        if self.limit.is_some() {
            self.bytes.extend(bytes);
            self.lens.push_back(bytes.len());
            self.evict();
        }
    }

    /// Keep PCM16 samples as their little-endian wire bytes.
    fn push_pcm16(&mut self, pcm: &[i16]) {
        if self.limit.is_some() {
            self.bytes.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
            self.lens.push_back(pcm.len() * 2);
            self.evict();
        }
    }

    /// Keep already-encoded wire bytes (G.711 codes).
    fn push_codes(&mut self, codes: &[u8]) {
        if self.limit.is_some() {
            self.bytes.extend(codes);
            self.lens.push_back(codes.len());
            self.evict();
        }
    }

    fn evict(&mut self) {
        let limit = self.limit.unwrap_or(0);
        while self.bytes.len() > limit {
            let Some(n) = self.lens.pop_front() else {
                break;
            };
            self.bytes.drain(..n.min(self.bytes.len()));
            self.evicted += n as u64;
        }
    }

    /// Everything kept (in order) and the bytes evicted since the last take;
    /// both are reset.
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        let out: Vec<u8> = self.bytes.drain(..).collect();
        self.lens.clear();
        (out, std::mem::take(&mut self.evicted))
    }
}

/// How early a pump accepts its tick (timers are rounded to milliseconds).
const TICK_SLACK: Duration = Duration::from_millis(1);

pub struct PumpSettings {
    pub codec: Codec,
    /// Samples per second of the ring's audio (the session's input rate).
    pub rate: u32,
    /// Most samples per frame.
    pub chunk: usize,
    pub interval: Duration,
    /// Send at most real time (a pre-recorded source) instead of everything
    /// available at each tick (a live microphone).
    pub pace: bool,
    /// The ring holds G.711 codes (one per sample slot) to send as they are.
    pub codes: bool,
}

pub struct InputPump {
    ring: Py<RingBuffer>,
    cfg: PumpSettings,
    /// Taken on the first poll: starting a clock needs the runtime's
    /// context, which the Python thread installing the pump does not have.
    clock: Option<Arc<PumpClock>>,
    registered: Option<u64>,
    due: Instant,
    last: Instant,
    credit: f64,
    pcm: Vec<i16>,
    codes: Vec<u8>,
    /// A frame built but refused by a full outbox: `(frame, bytes, samples)`,
    /// offered again first (its samples already left the ring).
    pending: Option<(Message, usize, usize)>,
    sent: Arc<AtomicU64>,
    retained: Arc<Mutex<Retained>>,
}

impl InputPump {
    pub fn new(
        ring: Py<RingBuffer>,
        cfg: PumpSettings,
        sent: Arc<AtomicU64>,
        retained: Arc<Mutex<Retained>>,
    ) -> Self {
        let now = Instant::now();
        InputPump {
            ring,
            pcm: vec![0; cfg.chunk],
            codes: Vec::with_capacity(cfg.chunk),
            credit: cfg.chunk as f64,
            clock: None,
            registered: None,
            due: now,
            last: now,
            pending: None,
            cfg,
            sent,
            retained,
        }
    }

    /// Queue the frames due now in the outbox, then wait for the next tick.
    /// A full outbox (the peer is not reading) leaves the audio in the ring,
    /// under its overflow policy.
    pub fn poll(&mut self, cx: &mut Context<'_>, outbox: &Shared) {
        let now = Instant::now();
        // The clock wakes us at the tick; a timer may fire a little early.
        if now + TICK_SLACK < self.due {
            self.wait(cx);
            return;
        }
        let chunk = self.cfg.chunk;
        let available = self.ring.get().available_samples();
        let mut budget = available;
        if self.cfg.pace {
            let gained = now.saturating_duration_since(self.last).as_secs_f64();
            self.credit = (self.credit + gained * f64::from(self.cfg.rate)).min(3.0 * chunk as f64);
            let whole = (self.credit as usize / chunk) * chunk;
            // Whole chunks at real time; a short tail goes once it is due.
            budget = if available >= chunk {
                whole.min(available)
            } else if self.credit >= available as f64 {
                available
            } else {
                0
            };
        }
        self.last = now;
        let sent = self.drain(budget, outbox, false);
        if self.cfg.pace {
            self.credit -= sent as f64;
        }
        self.due = next_tick(now, self.cfg.interval);
        self.wait(cx);
    }

    fn wait(&mut self, cx: &mut Context<'_>) {
        loop {
            let interval = self.cfg.interval;
            let clock = self.clock.get_or_insert_with(|| PumpClock::get(interval));
            match clock.register(cx.waker(), self.registered) {
                Some(tick) => {
                    self.registered = Some(tick);
                    return;
                }
                None => {
                    self.clock = None; // stopped: take the current one
                    self.registered = None;
                }
            }
        }
    }

    /// Queue everything in the ring now (before a commit), ignoring pacing
    /// and the outbox bounds, so nothing sent after it can overtake it.
    pub fn flush(&mut self, outbox: &Shared) -> usize {
        self.drain(usize::MAX, outbox, true)
    }

    /// Move up to `limit` samples from the ring into append frames in the
    /// outbox; returns the samples queued.
    fn drain(&mut self, mut limit: usize, outbox: &Shared, force: bool) -> usize {
        let mut total = 0;
        if let Some((frame, bytes, n)) = self.pending.take() {
            if let Err(frame) = outbox.offer_own(frame, bytes, force) {
                self.pending = Some((frame, bytes, n));
                return 0;
            }
            total += n;
            limit = limit.saturating_sub(n);
        }
        while limit > 0 {
            let want = limit.min(self.cfg.chunk);
            let n = self.ring.get().pop_i16(&mut self.pcm[..want]);
            if n == 0 {
                break;
            }
            let pcm = &self.pcm[..n];
            let mut frame = Vec::new();
            let mut kept = lock(&self.retained);
            match self.cfg.codec {
                Codec::Pcm16 => {
                    wire::write_append_frame(pcm, &mut frame);
                    kept.push_pcm16(pcm);
                }
                Codec::Ulaw | Codec::Alaw => {
                    self.codes.resize(n, 0);
                    if self.cfg.codes {
                        // Codes carried in sample slots: the low byte is the code.
                        for (c, &s) in self.codes.iter_mut().zip(pcm) {
                            *c = s as u8;
                        }
                    } else if self.cfg.codec == Codec::Ulaw {
                        ulaw_encode_into(pcm, &mut self.codes);
                    } else {
                        alaw_encode_into(pcm, &mut self.codes);
                    }
                    wire::write_append_frame_bytes(&self.codes, &mut frame);
                    kept.push_codes(&self.codes);
                }
            }
            // Kept once built: a frame still queued (or refused) when the
            // connection dies is re-sent by the session like the rest.
            drop(kept);
            let bytes = frame.len();
            // The frame is ASCII by construction (JSON prefix, base64, suffix).
            let Ok(text) = Utf8Bytes::try_from(frame) else {
                break;
            };
            if let Err(frame) = outbox.offer_own(Message::Text(text), bytes, force) {
                self.pending = Some((frame, bytes, n));
                break;
            }
            total += n;
            limit -= n;
            if n < want {
                break;
            }
        }
        self.sent.fetch_add(total as u64, Ordering::Relaxed);
        total
    }
}

#[cfg(test)]
mod tests {
    use super::Retained;

    #[test]
    fn retained_keeps_the_newest_chunks_and_counts_the_rest_exactly() {
        let mut r = Retained::default();
        r.push(&[1, 2]); // not kept: retention is off
        assert_eq!(r.take(), (vec![], 0));
        r.limit = Some(5);
        r.push(&[1, 2]);
        r.push(&[3, 4]);
        r.push(&[5, 6]); // 6 > 5: the oldest chunk goes, whole
        assert_eq!(r.take(), (vec![3, 4, 5, 6], 2));
        assert_eq!(r.take(), (vec![], 0)); // both reset by a take
        r.push(&[7; 9]); // a chunk over the limit on its own is not kept either
        assert_eq!(r.take(), (vec![], 9));
    }
}
