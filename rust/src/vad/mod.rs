//! Streaming voice activity detection: where speech starts and stops in a mono
//! stream, as sample offsets, for any chunking of the input.
//!
//! # How a frame is classified
//!
//! The stream is cut into fixed frames (10, 20 or 30 ms). For each frame we
//! keep two running sums while samples arrive, so no audio is buffered:
//!
//! - the energy, as a level in dBFS (`10·log10(mean(x²))`, x in [-1, 1));
//! - the zero-crossing rate (sign changes per sample).
//!
//! A frame is *loud* when all three hold:
//!
//! 1. its level is above the absolute gate `threshold_db` — nothing quieter
//!    than this is ever speech, whatever the background;
//! 2. its level is at least `snr_db` above the *noise floor*, tracked with
//!    minimum statistics: the floor is the lowest frame level seen within the
//!    last `noise_window_ms`, kept as the minima of eight sub-windows in a
//!    fixed ring. Speech always has dips (pauses, stop closures) within a
//!    second or so, which keep the floor at the background level; stationary
//!    noise has none, so the floor rises to it and it stops counting as speech
//!    after one window. Until the first window has passed, the floor starts at
//!    `threshold_db - snr_db`, so speech at the very start of a stream is not
//!    missed;
//! 3. its zero-crossing rate is at most `max_zcr`. Voiced speech crosses zero
//!    a few hundred times a second (ZCR ≈ 0.02–0.2 at 16 kHz), white noise on
//!    every other sample (≈ 0.5). Fricatives (/s/, /f/) are rejected too; they
//!    sit between voiced frames and the hangover bridges them.
//!
//! # From frames to events
//!
//! Speech starts after `min_speech` consecutive loud frames (a click or a
//! short blip is not a turn); the start offset is the first of them. It stops
//! after `hangover` consecutive quiet frames; the stop offset is the end of the
//! last loud frame. Each event also carries a *padded* offset, the one to cut
//! audio at: the start moved back by `prefix_padding` (never before the end of
//! the previous segment, so consecutive segments do not overlap), and the stop
//! moved on to the end of the hangover, where the decision was taken.
//!
//! Floats are converted to PCM16 with the crate's rule (`crate::pcm`) first, so
//! a float stream and its PCM16 copy give identical events. The state is a
//! few scalars and one fixed array; `push` allocates nothing (the caller owns
//! the event vector and reuses it).

mod py;

pub use py::{register, VADEvent, VAD};

use crate::pcm::{f32_to_i16_fast, f64_to_i16};

/// Number of sub-windows of the noise-floor minimum tracker.
const SUBWINDOWS: usize = 8;

/// Levels are computed as `10·log10(power + FLOOR_POWER)`: digital silence is
/// -120 dBFS instead of -inf.
const FLOOR_POWER: f64 = 1e-12;

/// Accepted sample rates, frame lengths and durations (anything else is a typo).
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 1_000..=384_000;
pub const FRAME_MS: [u32; 3] = [10, 20, 30];
const MAX_MS: u32 = 60_000;

/// Detector settings; see the module documentation for what each one does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    pub sample_rate: u32,
    pub frame_ms: u32,
    pub threshold_db: f32,
    pub snr_db: f32,
    pub max_zcr: f32,
    pub min_speech_ms: u32,
    pub hangover_ms: u32,
    pub prefix_padding_ms: u32,
    pub noise_window_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            sample_rate: 16_000,
            frame_ms: 20,
            threshold_db: -45.0,
            snr_db: 10.0,
            max_zcr: 0.4,
            min_speech_ms: 100,
            hangover_ms: 500,
            prefix_padding_ms: 300,
            noise_window_ms: 1_500,
        }
    }
}

impl VadConfig {
    /// Check the settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !RATE_RANGE.contains(&self.sample_rate) {
            return Err(format!(
                "sample_rate must be between {} and {} Hz, got {}",
                RATE_RANGE.start(),
                RATE_RANGE.end(),
                self.sample_rate
            ));
        }
        if !FRAME_MS.contains(&self.frame_ms) {
            return Err(format!(
                "frame_ms must be 10, 20 or 30, got {}",
                self.frame_ms
            ));
        }
        if !(-120.0..=0.0).contains(&self.threshold_db) {
            return Err(format!(
                "threshold_db must be between -120 and 0 dBFS, got {}",
                self.threshold_db
            ));
        }
        if !(0.0..=60.0).contains(&self.snr_db) {
            return Err(format!(
                "snr_db must be between 0 and 60 dB, got {}",
                self.snr_db
            ));
        }
        if !(0.0..=1.0).contains(&self.max_zcr) {
            return Err(format!(
                "max_zero_crossing_rate must be between 0 and 1, got {}",
                self.max_zcr
            ));
        }
        for (name, ms) in [
            ("min_speech_ms", self.min_speech_ms),
            ("hangover_ms", self.hangover_ms),
            ("prefix_padding_ms", self.prefix_padding_ms),
            ("noise_window_ms", self.noise_window_ms),
        ] {
            if ms > MAX_MS {
                return Err(format!("{name} must be at most {MAX_MS}, got {ms}"));
            }
        }
        Ok(())
    }

    /// Samples per frame (at least one).
    pub fn frame_len(&self) -> usize {
        (u64::from(self.sample_rate) * u64::from(self.frame_ms) / 1000).max(1) as usize
    }

    fn frames(&self, ms: u32) -> u32 {
        ms / self.frame_ms
    }
}

/// Whether an event opens or closes a speech segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Start,
    Stop,
}

/// A speech boundary, as sample offsets from the start of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VadEvent {
    pub kind: EventKind,
    /// Where speech itself starts (first loud frame) or stops (end of the last one).
    pub sample: u64,
    /// Where to cut the audio: `sample` minus the prefix padding for a start,
    /// the end of the hangover for a stop.
    pub padded_sample: u64,
}

/// The streaming detector. Feed it with [`Vad::push_i16`] / [`Vad::push_f32`] /
/// [`Vad::push_f64`] in chunks of any length; end a stream with [`Vad::flush`].
#[derive(Clone, Debug)]
pub struct Vad {
    cfg: VadConfig,
    frame_len: usize,
    min_speech: u32,
    hangover: u32,
    prefix: u64,
    // The frame being accumulated.
    energy: u64,
    crossings: u32,
    filled: usize,
    prev_negative: bool,
    frames: u64,
    // Noise floor: minima of the completed sub-windows and of the current one.
    sub_len: u32,
    sub_count: u32,
    sub_min: f32,
    minima: [f32; SUBWINDOWS],
    next_min: usize,
    // Segmentation.
    in_speech: bool,
    run: u32,
    last_loud_end: u64,
    last_stop: u64,
    level_db: f32,
}

impl Vad {
    /// A detector for `cfg`, which must have passed [`VadConfig::validate`]
    /// (out-of-range values are clamped, never a panic).
    pub fn new(cfg: VadConfig) -> Self {
        let frame_ms = cfg.frame_ms.max(1);
        let cfg = VadConfig { frame_ms, ..cfg };
        let window_frames = cfg.frames(cfg.noise_window_ms).max(1);
        let mut vad = Vad {
            frame_len: cfg.frame_len(),
            min_speech: cfg.frames(cfg.min_speech_ms).max(1),
            hangover: cfg.frames(cfg.hangover_ms).max(1),
            prefix: u64::from(cfg.frames(cfg.prefix_padding_ms)),
            sub_len: window_frames.div_ceil(SUBWINDOWS as u32),
            cfg,
            energy: 0,
            crossings: 0,
            filled: 0,
            prev_negative: false,
            frames: 0,
            sub_count: 0,
            sub_min: f32::INFINITY,
            minima: [0.0; SUBWINDOWS],
            next_min: 0,
            in_speech: false,
            run: 0,
            last_loud_end: 0,
            last_stop: 0,
            level_db: -120.0,
        };
        vad.reset();
        vad
    }

    /// Forget the stream: offsets restart at zero and the noise floor at its
    /// initial value.
    pub fn reset(&mut self) {
        self.energy = 0;
        self.crossings = 0;
        self.filled = 0;
        self.prev_negative = false;
        self.frames = 0;
        self.sub_count = 0;
        self.sub_min = f32::INFINITY;
        self.minima = [self.cfg.threshold_db - self.cfg.snr_db; SUBWINDOWS];
        self.next_min = 0;
        self.in_speech = false;
        self.run = 0;
        self.last_loud_end = 0;
        self.last_stop = 0;
        self.level_db = -120.0;
    }

    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// True between a start event and its stop event.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Samples consumed since the start of the stream (or the last reset).
    pub fn position(&self) -> u64 {
        self.frames * self.frame_len as u64 + self.filled as u64
    }

    /// Level of the last complete frame, in dBFS.
    pub fn level_db(&self) -> f32 {
        self.level_db
    }

    /// The current noise-floor estimate, in dBFS.
    pub fn noise_floor_db(&self) -> f32 {
        self.minima.iter().fold(self.sub_min, |m, &v| m.min(v))
    }

    /// Consume PCM16 samples, appending any events to `events`.
    pub fn push_i16(&mut self, src: &[i16], events: &mut Vec<VadEvent>) {
        let mut rest = src;
        while !rest.is_empty() {
            let take = (self.frame_len - self.filled).min(rest.len());
            let (now, later) = rest.split_at(take);
            // Sums over a run inside one frame, with no per-sample frame check and no
            // loop-carried state, so both loops vectorise. Two samples differ in sign
            // exactly when their XOR is negative.
            let energy: u64 = now
                .iter()
                .map(|&s| {
                    let v = i32::from(s);
                    (v * v) as u32 as u64
                })
                .sum();
            let mut crossings: u32 = now
                .iter()
                .zip(now.iter().skip(1))
                .map(|(&a, &b)| u32::from((a ^ b) < 0))
                .sum();
            if let (Some(&first), Some(&last)) = (now.first(), now.last()) {
                crossings += u32::from((first < 0) != self.prev_negative);
                self.prev_negative = last < 0;
            }
            self.energy += energy;
            self.crossings += crossings;
            self.filled += take;
            if self.filled == self.frame_len {
                self.end_frame(events);
            }
            rest = later;
        }
    }

    /// Consume float samples in [-1, 1) (converted with the PCM16 rule).
    pub fn push_f32(&mut self, src: &[f32], events: &mut Vec<VadEvent>) {
        // `f32_to_i16_fast` equals `f32_to_i16` for every input and vectorises.
        self.push_converted(src, f32_to_i16_fast, events);
    }

    /// Consume double samples in [-1, 1) (converted with the PCM16 rule).
    pub fn push_f64(&mut self, src: &[f64], events: &mut Vec<VadEvent>) {
        self.push_converted(src, f64_to_i16, events);
    }

    fn push_converted<T: Copy>(
        &mut self,
        src: &[T],
        to_i16: fn(T) -> i16,
        events: &mut Vec<VadEvent>,
    ) {
        // Convert through a small stack block so the PCM16 loop does the work.
        let mut block = [0i16; 256];
        for chunk in src.chunks(block.len()) {
            let dst = &mut block[..chunk.len()];
            for (d, &s) in dst.iter_mut().zip(chunk) {
                *d = to_i16(s);
            }
            self.push_i16(dst, events);
        }
    }

    /// End of stream: close a segment in progress at the current position
    /// (the partial frame included) and reset for a new stream. Returns the
    /// stop event, if there was a segment to close.
    pub fn flush(&mut self) -> Option<VadEvent> {
        let event = self.in_speech.then(|| VadEvent {
            kind: EventKind::Stop,
            sample: self.last_loud_end,
            padded_sample: self.position(),
        });
        self.reset();
        event
    }

    fn end_frame(&mut self, events: &mut Vec<VadEvent>) {
        let n = self.frame_len as f64;
        let power = self.energy as f64 / (n * 32768.0 * 32768.0);
        let level = (10.0 * (power + FLOOR_POWER).log10()) as f32;
        let zcr = self.crossings as f32 / self.frame_len as f32;
        self.energy = 0;
        self.crossings = 0;
        self.filled = 0;
        self.level_db = level;

        self.sub_min = self.sub_min.min(level);
        self.sub_count += 1;
        if self.sub_count >= self.sub_len {
            self.minima[self.next_min] = self.sub_min;
            self.next_min = (self.next_min + 1) % SUBWINDOWS;
            self.sub_min = f32::INFINITY;
            self.sub_count = 0;
        }
        let floor = self.noise_floor_db();
        let loud = level > self.cfg.threshold_db
            && level >= floor + self.cfg.snr_db
            && zcr <= self.cfg.max_zcr;

        let frame = self.frames;
        self.frames += 1;
        let len = self.frame_len as u64;
        let end = self.frames * len;
        if !self.in_speech {
            self.run = if loud { self.run + 1 } else { 0 };
            if self.run >= self.min_speech {
                let onset = frame + 1 - u64::from(self.min_speech);
                let padded = onset.saturating_sub(self.prefix) * len;
                events.push(VadEvent {
                    kind: EventKind::Start,
                    sample: onset * len,
                    padded_sample: padded.max(self.last_stop),
                });
                self.in_speech = true;
                self.run = 0;
                self.last_loud_end = end;
            }
        } else if loud {
            self.run = 0;
            self.last_loud_end = end;
        } else {
            self.run += 1;
            if self.run >= self.hangover {
                events.push(VadEvent {
                    kind: EventKind::Stop,
                    sample: self.last_loud_end,
                    padded_sample: end,
                });
                self.in_speech = false;
                self.run = 0;
                self.last_stop = end;
            }
        }
    }
}

#[cfg(test)]
mod tests;
