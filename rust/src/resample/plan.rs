//! Choosing a rubato engine, its block size and its exact delay for a rate pair.
//!
//! Two qualities are offered, and each maps onto one rubato resampler that is built
//! once per stream:
//!
//! * `High` uses the synchronous [`rubato::Fft`] resampler. It filters with a
//!   Blackman-Harris windowed sinc as long as one FFT block, which is the natural
//!   choice for a fixed ratio: about 105 dB stopband and a passband flat to far better
//!   than 80 dB up to 0.45 of the lower Nyquist frequency, at a low cost per sample.
//!   Its block is a multiple of the smallest block the rate pair allows
//!   (`rate / gcd(in, out)` frames per side), so the delay is larger for awkward pairs
//!   such as 22.05 kHz <-> 8 kHz.
//! * `LowLatency` keeps the algorithmic delay at or below 3 ms (about 2 ms at most for
//!   8 kHz and up; the filter spans 32 samples of the lower rate, so below ~5.4 kHz
//!   the delay grows past 3 ms). It uses the same FFT engine with a 32-frame block on the lower-rate
//!   side whenever half a block fits in 3 ms (most pairs: 0.3-1.7 ms), because that
//!   engine is the faster one. For pairs whose smallest FFT block is too long
//!   (22.05/44.1 kHz <-> 8/16 kHz, 22.05 kHz <-> 24/48 kHz) it uses [`rubato::Async`]
//!   with a 32-tap (at the lower rate) Blackman-Harris sinc. When the ratio has a
//!   small denominator the sinc table gets exactly one row per output phase and
//!   `Nearest` interpolation, which turns the "asynchronous" resampler into an exact
//!   polyphase FIR: one dot product per output sample, no interpolation error, and a
//!   delay that is a known fraction.
//!
//! The delay is kept as an exact fraction of output frames (`num / in_rate`) because
//! aligning the output with the input needs it to the sample: a tone near 0.2 × fs is
//! already 45 dB off after a 1/256-sample misalignment.

use rubato::{
    calculate_cutoff, Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Sample rates outside `MIN_RATE..=MAX_RATE` are treated as caller mistakes (a rate
/// of 1 Hz would make the FFT engine's block millions of frames long).
pub const MIN_RATE: u32 = 1000;
pub const MAX_RATE: u32 = 384_000;
/// Highest channel count accepted (keeps buffer sizes sane for bad input).
pub const MAX_CHANNELS: usize = 64;

/// Filter length of `LowLatency`, counted at the lower of the two rates (for the
/// FFT engine: its block, which is also its filter length). Blackman-Harris at
/// 32 taps still gives about 105 dB stopband and passband accuracy.
const LOW_LATENCY_TAPS: usize = 32;
/// `LowLatency` guarantees at most this much algorithmic delay.
const LOW_LATENCY_MAX_DELAY_MS: usize = 3;
/// Smallest FFT block of `High`, counted on the lower-rate side. 32 already meets
/// the 80 dB target; 64 keeps a margin above float32 rounding noise.
const HIGH_MIN_BLOCK: usize = 64;
/// Above this many output phases the exact polyphase table would be too large
/// (phases × taps floats), so `LowLatency` falls back to cubic interpolation
/// between 256 sinc phases, with a delay that is exact only to about 1e-3 frames.
const MAX_EXACT_PHASES: usize = 2048;

/// Resampling quality, the trade-off between delay and fidelity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    High,
    LowLatency,
}

impl Quality {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "high" => Some(Quality::High),
            "low_latency" => Some(Quality::LowLatency),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quality::High => "high",
            Quality::LowLatency => "low_latency",
        }
    }
}

/// Invalid parameters or an internal resampler failure, with a readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResampleError(pub String);

impl std::fmt::Display for ResampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResampleError {}

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, ResampleError> {
    Err(ResampleError(msg.into()))
}

/// The rubato resampler of one stream (either engine, behind one trait object:
/// it is called once per block, so dynamic dispatch costs nothing measurable).
pub(crate) type Engine = Box<dyn Resampler<f32>>;

/// Everything a stream needs that depends only on its parameters.
pub(crate) struct Plan {
    pub engine: Engine,
    /// Input frames per engine call (the engine always gets exactly this many).
    pub block_in: usize,
    /// Most output frames one engine call can write.
    pub max_out: usize,
    /// Delay in output frames is `delay_num / in_rate` (exact; may be fractional).
    pub delay_num: i64,
}

pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

pub(crate) fn validate(in_rate: i64, out_rate: i64, channels: i64) -> Result<(), ResampleError> {
    for (name, rate) in [("in_rate", in_rate), ("out_rate", out_rate)] {
        if rate < MIN_RATE as i64 || rate > MAX_RATE as i64 {
            return err(format!(
                "{name} must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate}"
            ));
        }
    }
    if channels < 1 || channels > MAX_CHANNELS as i64 {
        return err(format!(
            "channels must be between 1 and {MAX_CHANNELS}, got {channels}"
        ));
    }
    Ok(())
}

fn construction(e: impl std::fmt::Display) -> ResampleError {
    ResampleError(format!("could not build the resampler: {e}"))
}

pub(crate) fn plan(
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    quality: Quality,
) -> Result<Plan, ResampleError> {
    let (fi, fo) = (in_rate as usize, out_rate as usize);
    match quality {
        Quality::High => fft_plan(fi, fo, channels, fft_block(fi, fo, HIGH_MIN_BLOCK)),
        Quality::LowLatency => {
            // The FFT engine is the faster one (rubato's sinc path pays a per-sample
            // overhead), so use it whenever its delay — half a block — fits.
            let block = fft_block(fi, fo, LOW_LATENCY_TAPS);
            if (block / 2) * 1000 <= LOW_LATENCY_MAX_DELAY_MS * fi {
                fft_plan(fi, fo, channels, block)
            } else {
                sinc_plan(fi, fo, channels)
            }
        }
    }
}

/// Input frames of the smallest valid FFT block (a multiple of `in / gcd`)
/// whose shorter side has at least `min_side` frames.
fn fft_block(fi: usize, fo: usize, min_side: usize) -> usize {
    let g = gcd(fi as u64, fo as u64) as usize;
    let (min_in, min_out) = (fi / g, fo / g);
    min_side.div_ceil(min_in.min(min_out)) * min_in
}

/// One FFT unit per engine call, Blackman-Harris window (rubato sizes the cutoff).
fn fft_plan(fi: usize, fo: usize, channels: usize, block: usize) -> Result<Plan, ResampleError> {
    let fft = Fft::<f32>::new_custom(
        fi,
        fo,
        block,
        1,
        channels,
        WindowFunction::BlackmanHarris,
        FixedSync::Both,
    )
    .map_err(construction)?;
    // The sinc is centred on sample `fft_size_in / 2` (integer division).
    let centre = (fft.fft_size_in() / 2) as i64;
    let block_in = fft.input_frames_next();
    let max_out = fft.output_frames_max();
    Ok(Plan {
        engine: Box::new(fft),
        block_in,
        max_out,
        delay_num: centre * fo as i64,
    })
}

/// rubato's `Async` sinc resampler as an exact polyphase filter (see module docs).
fn sinc_plan(fi: usize, fo: usize, channels: usize) -> Result<Plan, ResampleError> {
    let g = gcd(fi as u64, fo as u64) as usize;
    let phases = fo / g;
    // Taps at the input rate: scaled up when downsampling so that the filter
    // spans LOW_LATENCY_TAPS samples of the (lower) output rate.
    let taps = (LOW_LATENCY_TAPS * fi)
        .div_ceil(fo)
        .max(LOW_LATENCY_TAPS)
        .next_multiple_of(8);
    let exact = phases <= MAX_EXACT_PHASES;
    let params = SincInterpolationParameters::new(taps, WindowFunction::BlackmanHarris)
        // Relative to the lower Nyquist frequency; rubato scales it when downsampling.
        .f_cutoff(calculate_cutoff::<f32>(
            LOW_LATENCY_TAPS,
            WindowFunction::BlackmanHarris,
        ))
        .oversampling_factor(if exact { phases } else { 256 })
        .interpolation(if exact {
            SincInterpolationType::Nearest
        } else {
            SincInterpolationType::Cubic
        });
    let block_in = low_latency_block(fi);
    let sinc = Async::<f32>::new_sinc(
        fo as f64 / fi as f64,
        1.0,
        &params,
        block_in,
        channels,
        FixedAsync::Input,
    )
    .map_err(construction)?;
    let max_out = sinc.output_frames_max();
    // Output frame k is computed at rubato index (k + 1)·in/out − (taps − 1), and
    // the table row for that phase is centred taps/2 − 1 + g/out samples later, so
    // frame k shows the input at k·in/out − (taps/2 − (in + g)/out). In output
    // frames, times in_rate:
    let delay_num = (taps * fo / 2) as i64 - fi as i64 - g as i64;
    Ok(Plan {
        engine: Box::new(sinc),
        block_in,
        max_out,
        delay_num,
    })
}

/// About 2 ms of input per engine call, chosen to divide 20 ms where the rate
/// allows, so that 10/20 ms chunks are consumed whole without a remainder waiting.
fn low_latency_block(rate: usize) -> usize {
    let target = (rate / 500).max(8);
    if rate.is_multiple_of(50) {
        let per_20ms = rate / 50;
        if let Some(d) = (8..=target).rev().find(|d| per_20ms.is_multiple_of(*d)) {
            return d;
        }
    }
    target
}
