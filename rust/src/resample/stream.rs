//! The streaming resampler kernel: fixed engine blocks behind a staging buffer.
//!
//! Python hands us chunks of any length. Feeding those straight to rubato would make
//! the output depend on where the chunk boundaries fall (rubato's block position is
//! part of its state). Instead every stream stages input in a preallocated block of
//! `block_in` frames and calls the engine only with full blocks, so the sequence of
//! engine calls — and therefore every output sample — is a function of the input
//! samples alone. Chunked output is bit-identical to one-shot output.
//!
//! All buffers are allocated in [`StreamResampler::new`]; `process` only appends to
//! the caller's output `Vec`, which the caller reuses between calls.

use rubato::audioadapter_buffers::direct::InterleavedSlice;

use super::plan::{self, err, Engine, Quality, ResampleError};
use crate::pcm::i16_to_f32;

/// Largest float sample magnitude passed to the engine (±inf and anything larger
/// is clamped to it); far beyond any real audio level yet safe from overflow.
pub const FLOAT_LIMIT: f32 = 65536.0;

/// Interleaved input samples of one chunk.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    F32(&'a [f32]),
    I16(&'a [i16]),
}

impl Input<'_> {
    pub fn len(&self) -> usize {
        match self {
            Input::F32(s) => s.len(),
            Input::I16(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy `dst.len()` samples starting at `start` into `dst`, as float32.
    ///
    /// Float input is sanitised on the way: NaN becomes 0 (as in the PCM16 rule) and
    /// everything else is clamped to ±[`FLOAT_LIMIT`]. A non-finite value inside
    /// rubato's FFT would otherwise reach realfft's inverse transform, which rejects
    /// it with an error that rubato unwraps (a panic).
    fn copy_to(&self, start: usize, dst: &mut [f32]) {
        match self {
            Input::F32(s) => {
                let n = dst.len();
                for (d, &v) in dst.iter_mut().zip(&s[start..start + n]) {
                    *d = if v.is_nan() {
                        0.0
                    } else {
                        v.clamp(-FLOAT_LIMIT, FLOAT_LIMIT)
                    };
                }
            }
            Input::I16(s) => {
                let n = dst.len();
                for (d, &v) in dst.iter_mut().zip(&s[start..start + n]) {
                    *d = i16_to_f32(v);
                }
            }
        }
    }
}

/// A stateful resampler for one stream of interleaved audio.
pub struct StreamResampler {
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    quality: Quality,
    engine: Engine,
    block_in: usize,
    max_out: usize,
    delay_num: i64,
    /// Staged input, interleaved, exactly `block_in * channels` long.
    pending: Vec<f32>,
    pending_frames: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    pub fn new(
        in_rate: i64,
        out_rate: i64,
        channels: i64,
        quality: Quality,
    ) -> Result<Self, ResampleError> {
        plan::validate(in_rate, out_rate, channels)?;
        let (in_rate, out_rate, channels) = (in_rate as u32, out_rate as u32, channels as usize);
        let p = plan::plan(in_rate, out_rate, channels, quality)?;
        Ok(StreamResampler {
            in_rate,
            out_rate,
            channels,
            quality,
            engine: p.engine,
            block_in: p.block_in,
            max_out: p.max_out,
            delay_num: p.delay_num,
            pending: vec![0.0; p.block_in * channels],
            pending_frames: 0,
            frames_in: 0,
            frames_out: 0,
        })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn quality(&self) -> Quality {
        self.quality
    }

    /// Input frames the engine consumes per call (for tests and benchmarks).
    pub fn block_frames(&self) -> usize {
        self.block_in
    }

    /// Algorithmic delay in output frames: output frame `k` shows the input at
    /// time `(k - delay_frames()) / out_rate`. Exact, possibly fractional.
    pub fn delay_frames(&self) -> f64 {
        self.delay_num as f64 / self.in_rate as f64
    }

    /// The delay in output frames as `numerator / in_rate`.
    pub fn delay_numerator(&self) -> i64 {
        self.delay_num
    }

    /// Upper bound of the frames the next `process` of `frames` frames appends.
    pub fn max_output_frames(&self, frames: usize) -> usize {
        (self.pending_frames + frames) / self.block_in * self.max_out
    }

    /// Resample one chunk of interleaved samples and append the output frames to
    /// `out` (interleaved float32). `input.len()` must be a multiple of `channels`.
    pub fn process(&mut self, input: Input<'_>, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let ch = self.channels;
        if !input.len().is_multiple_of(ch) {
            return err(format!(
                "chunk of {} samples is not a whole number of {ch}-channel frames",
                input.len()
            ));
        }
        let frames = input.len() / ch;
        out.reserve(self.max_output_frames(frames) * ch);
        let mut pos = 0;
        while pos < frames {
            let take = (self.block_in - self.pending_frames).min(frames - pos);
            let dst =
                &mut self.pending[self.pending_frames * ch..(self.pending_frames + take) * ch];
            input.copy_to(pos * ch, dst);
            self.pending_frames += take;
            pos += take;
            if self.pending_frames == self.block_in {
                self.run_block(out)?;
            }
        }
        self.frames_in += frames as u64;
        Ok(())
    }

    /// Run the engine on the full staging block and append its output to `out`.
    fn run_block(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let ch = self.channels;
        let start = out.len();
        out.resize(start + self.max_out * ch, 0.0);
        let input = InterleavedSlice::new(&self.pending[..], ch, self.block_in)
            .map_err(|e| ResampleError(format!("internal input buffer: {e}")))?;
        let mut output = InterleavedSlice::new_mut(&mut out[start..], ch, self.max_out)
            .map_err(|e| ResampleError(format!("internal output buffer: {e}")))?;
        let (_, written) = self
            .engine
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| ResampleError(format!("resampling failed: {e}")))?;
        out.truncate(start + written * ch);
        self.frames_out += written as u64;
        self.pending_frames = 0;
        Ok(())
    }

    /// Output frames a finished stream has in total: the input length converted
    /// to the output rate, plus the delay, rounded to the nearest frame.
    pub fn total_output_frames(&self) -> u64 {
        if self.frames_in == 0 {
            return 0;
        }
        let num = self.frames_in as i128 * self.out_rate as i128 + self.delay_num as i128;
        let den = self.in_rate as i128;
        ((2 * num + den) / (2 * den)).max(0) as u64
    }

    /// Append the rest of the stream to `out` (zero-padding the input so the
    /// filter's tail comes out), then reset for a new stream. The total number of
    /// frames the stream produced is [`total_output_frames`](Self::total_output_frames).
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let ch = self.channels;
        let target = self.total_output_frames();
        while self.frames_out < target {
            self.pending[self.pending_frames * ch..].fill(0.0);
            self.pending_frames = self.block_in;
            self.run_block(out)?;
        }
        let excess = (self.frames_out.saturating_sub(target) as usize).saturating_mul(ch);
        out.truncate(out.len().saturating_sub(excess));
        self.reset();
        Ok(())
    }

    /// Forget all state: the next sample starts a new stream.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.pending_frames = 0;
        self.frames_in = 0;
        self.frames_out = 0;
    }
}

/// Resample a whole clip (interleaved) with the delay removed, so output frame `k`
/// shows the input at time `k / out_rate`. Returns `round(frames * out / in)` frames.
///
/// It runs the streaming machinery on the clip preceded by a few zeros, chosen so
/// that the total delay is a whole number of output frames, which can then be cut
/// exactly.
pub fn resample_clip(
    input: Input<'_>,
    in_rate: i64,
    out_rate: i64,
    channels: i64,
    quality: Quality,
) -> Result<Vec<f32>, ResampleError> {
    let mut s = StreamResampler::new(in_rate, out_rate, channels, quality)?;
    let ch = s.channels;
    if !input.len().is_multiple_of(ch) {
        return err(format!(
            "clip of {} samples is not a whole number of {ch}-channel frames",
            input.len()
        ));
    }
    let frames = input.len() / ch;
    if frames == 0 {
        return Ok(Vec::new());
    }
    let (fi, fo) = (s.in_rate as i64, s.out_rate as i64);
    // Smallest zero-padding z with (num + z·out) divisible by in: then the delay of
    // the padded clip is exactly (num + z·out) / in output frames.
    let lead = (0..fi)
        .find(|z| (s.delay_num + z * fo).rem_euclid(fi) == 0)
        .unwrap_or(0);
    let cut = ((s.delay_num + lead * fo) as f64 / fi as f64)
        .round()
        .max(0.0) as usize;
    let mut out =
        Vec::with_capacity(s.max_output_frames(frames + lead as usize) * ch + s.max_out * ch);
    if lead > 0 {
        let zeros = vec![0.0f32; lead as usize * ch];
        s.process(Input::F32(&zeros), &mut out)?;
    }
    s.process(input, &mut out)?;
    s.flush(&mut out)?;
    let cut = (cut * ch).min(out.len());
    out.drain(..cut);
    Ok(out)
}
