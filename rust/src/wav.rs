//! WAV (RIFF/WAVE) encoding to and decoding from PCM16.
//!
//! Decoding accepts what real producers emit rather than only the canonical
//! 44-byte layout: 8-bit unsigned, 16/24/32-bit signed and 32/64-bit IEEE float
//! samples, G.711 A-law/μ-law (format tags 6 and 7, common in telephony
//! recordings), `WAVE_FORMAT_EXTENSIBLE` wrapping any of these, extra chunks
//! anywhere (including before `fmt `), odd-sized chunks with their pad byte,
//! and streaming headers whose sizes are placeholders.
//!
//! Every sample format is mapped to PCM16 as if it were first normalised to a
//! float in [-1, 1) and then converted with the rule in [`crate::pcm`]: wider
//! integers are rounded half away from zero (not truncated), floats clip.
//!
//! Lengths in the file are never trusted for memory access: every read goes
//! through `get`, and sizes are clamped to the buffer, as follows.
//! * The RIFF size is ignored; chunks are walked up to the end of the buffer
//!   until both `fmt ` and `data` are found (RIFF sizes are often wrong).
//! * A `data` size of 0 or 0xFFFFFFFF (a stream whose header was written before
//!   its length was known) means the data runs to the end of the buffer.
//! * A `data` size larger than what remains is clamped to the buffer: a
//!   truncated recording decodes to the frames that are present.
//! * A trailing partial frame is dropped.
//! * A `fmt ` chunk that overruns the buffer is an error.

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffer::{bytes_copy, new_bytes_with, AudioBuffer, Samples, DETACH_THRESHOLD_BYTES};
use crate::errors::audio_err;
use crate::g711::{ALAW_DECODE, ULAW_DECODE};
use crate::pcm::{
    f32_to_i16_fast, f32_to_pcm16_bytes, f64_to_i16, f64_to_pcm16_bytes, i16_to_pcm16_bytes,
    map_le_to_pcm16_bytes,
};

/// Size of the canonical header written by [`header`].
pub const HEADER_LEN: usize = 44;

/// The tail shared by the `KSDATAFORMAT_SUBTYPE_*` GUIDs; the first two bytes
/// of the GUID are the classic format tag.
const SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

const TAG_PCM: u16 = 0x0001;
const TAG_FLOAT: u16 = 0x0003;
const TAG_ALAW: u16 = 0x0006;
const TAG_MULAW: u16 = 0x0007;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

/// How the samples in the `data` chunk are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Signed little-endian integers (unsigned for 8 bits).
    Pcm,
    /// IEEE float, little-endian.
    Float,
    /// G.711 A-law, one byte per sample.
    ALaw,
    /// G.711 μ-law, one byte per sample.
    MuLaw,
}

impl Encoding {
    /// The name exposed as `WavAudio.format`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Pcm => "pcm",
            Encoding::Float => "float",
            Encoding::ALaw => "alaw",
            Encoding::MuLaw => "ulaw",
        }
    }
}

/// Why a buffer is not a WAV file we can decode. The message names the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavError(pub String);

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WavError {}

fn err<T>(msg: impl Into<String>) -> Result<T, WavError> {
    Err(WavError(msg.into()))
}

/// A parsed WAV file: its format and a borrowed slice of whole frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavInfo<'a> {
    pub encoding: Encoding,
    /// Container bits per sample (8, 16, 24, 32 or 64).
    pub bits_per_sample: u16,
    pub channels: u16,
    pub sample_rate: u32,
    /// The sample data, cut to a whole number of frames.
    pub data: &'a [u8],
}

impl WavInfo<'_> {
    pub fn bytes_per_sample(&self) -> usize {
        usize::from(self.bits_per_sample / 8)
    }

    /// Number of frames (one sample per channel) in `data`.
    pub fn frames(&self) -> usize {
        let frame = self.bytes_per_sample() * usize::from(self.channels);
        self.data.len().checked_div(frame).unwrap_or(0)
    }

    /// Size of the PCM16 output of [`decode_into`].
    pub fn pcm16_len(&self) -> usize {
        self.frames() * usize::from(self.channels) * 2
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// A chunk id for messages, printable even when it is binary junk.
fn show_id(id: &[u8]) -> String {
    id.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

fn codec_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => " (MS ADPCM)",
        0x0011 => " (IMA ADPCM)",
        0x0031 => " (GSM 6.10)",
        0x0050 => " (MPEG)",
        0x0055 => " (MP3)",
        0x0160..=0x0163 => " (WMA)",
        0x1610 => " (AAC)",
        _ => "",
    }
}

/// The fields of a `fmt ` chunk that decoding needs.
struct Format {
    encoding: Encoding,
    bits_per_sample: u16,
    channels: u16,
    sample_rate: u32,
}

fn parse_fmt(body: &[u8]) -> Result<Format, WavError> {
    let field = |at| u16_at(body, at);
    let (Some(mut tag), Some(channels), Some(sample_rate), Some(block_align), Some(bits)) =
        (field(0), field(2), u32_at(body, 4), field(12), field(14))
    else {
        return err(format!(
            "fmt chunk is too short: {} bytes, need at least 16",
            body.len()
        ));
    };
    if tag == TAG_EXTENSIBLE {
        let (Some(cb_size), Some(guid)) = (field(16), body.get(24..40)) else {
            return err(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk is too short: {} bytes, need 40",
                body.len()
            ));
        };
        if cb_size < 22 {
            return err(format!(
                "WAVE_FORMAT_EXTENSIBLE extension size is {cb_size}, need 22"
            ));
        }
        if guid.get(2..) != Some(&SUBTYPE_TAIL[..]) {
            return err("WAVE_FORMAT_EXTENSIBLE sub-format is not a known audio GUID");
        }
        tag = u16_at(guid, 0).unwrap_or(0);
    }
    if channels == 0 {
        return err("fmt chunk declares 0 channels");
    }
    if sample_rate == 0 {
        return err("fmt chunk declares a sample rate of 0 Hz");
    }
    let encoding = match (tag, bits) {
        (TAG_PCM, 8 | 16 | 24 | 32) => Encoding::Pcm,
        (TAG_PCM, _) => return err(format!("unsupported PCM bit depth {bits} (8, 16, 24 or 32)")),
        (TAG_FLOAT, 32 | 64) => Encoding::Float,
        (TAG_FLOAT, _) => return err(format!("unsupported float bit depth {bits} (32 or 64)")),
        (TAG_ALAW, 8) => Encoding::ALaw,
        (TAG_MULAW, 8) => Encoding::MuLaw,
        (TAG_ALAW | TAG_MULAW, _) => return err(format!("G.711 WAV must have 8 bits per sample, got {bits}")),
        _ => {
            return err(format!(
                "unsupported WAV codec: format tag {tag:#06x}{}; only PCM, IEEE float and G.711 are decoded",
                codec_name(tag)
            ))
        }
    };
    let expected = u32::from(channels) * u32::from(bits / 8);
    if u32::from(block_align) != expected {
        return err(format!(
            "block align {block_align} does not match {channels} channels x {bits} bits (expected {expected})"
        ));
    }
    Ok(Format {
        encoding,
        bits_per_sample: bits,
        channels,
        sample_rate,
    })
}

/// Parse a WAV file held in memory. See the module docs for the leniency rules.
pub fn parse(buf: &[u8]) -> Result<WavInfo<'_>, WavError> {
    let (Some(magic), Some(form)) = (buf.get(0..4), buf.get(8..12)) else {
        return err(format!(
            "truncated WAV header: {} bytes, need at least 12",
            buf.len()
        ));
    };
    match magic {
        b"RIFF" => {}
        b"RIFX" => return err("big-endian RIFX WAV files are not supported"),
        b"RF64" => return err("RF64 WAV files are not supported"),
        _ => {
            return err(format!(
                "not a WAV file: starts with {:?}, expected \"RIFF\"",
                show_id(magic)
            ))
        }
    }
    if form != b"WAVE" {
        return err(format!(
            "RIFF file is not WAVE: form type {:?}",
            show_id(form)
        ));
    }

    let mut fmt: Option<Format> = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12usize;
    // The id of a chunk whose size runs past the buffer, for error messages.
    let mut cut_short: Option<String> = None;
    // Each step consumes at least 8 bytes, so this ends within len / 8 steps.
    while fmt.is_none() || data.is_none() {
        let (Some(id), Some(size)) = (
            buf.get(pos..pos.saturating_add(4)),
            u32_at(buf, pos.saturating_add(4)),
        ) else {
            break;
        };
        let body_start = pos.saturating_add(8);
        let remaining = buf.len().saturating_sub(body_start);
        let size = size as usize;
        match id {
            b"fmt " if fmt.is_none() => {
                let Some(body) = buf.get(body_start..body_start.saturating_add(size)) else {
                    return err(format!(
                        "fmt chunk size {size} overruns the buffer ({remaining} bytes left)"
                    ));
                };
                fmt = Some(parse_fmt(body)?);
            }
            b"data" if data.is_none() => {
                let streaming = size == 0 || size == u32::MAX as usize;
                let len = if streaming {
                    remaining
                } else {
                    size.min(remaining)
                };
                data = buf.get(body_start..body_start.saturating_add(len));
                if streaming {
                    break;
                }
            }
            _ => {}
        }
        // Chunks are word aligned: an odd size is followed by a pad byte.
        match body_start
            .checked_add(size)
            .and_then(|e| e.checked_add(size & 1))
        {
            Some(next) if next <= buf.len() => pos = next,
            _ => {
                if body_start.saturating_add(size) > buf.len() {
                    cut_short = Some(show_id(id));
                }
                break;
            }
        }
    }

    let missing = |what: &str| -> Result<WavInfo<'_>, WavError> {
        match &cut_short {
            Some(id) => err(format!(
                "missing {what} chunk (chunk '{id}' overruns the buffer)"
            )),
            None => err(format!("missing {what} chunk")),
        }
    };
    let Some(format) = fmt else {
        return missing("fmt");
    };
    let Some(data) = data else {
        return missing("data");
    };
    let frame = usize::from(format.channels) * usize::from(format.bits_per_sample / 8);
    let whole = data.len() - data.len() % frame.max(1);
    Ok(WavInfo {
        encoding: format.encoding,
        bits_per_sample: format.bits_per_sample,
        channels: format.channels,
        sample_rate: format.sample_rate,
        data: data.get(..whole).unwrap_or(&[]),
    })
}

/// Divide by 2^shift rounding half away from zero, then clip to int16: the
/// integer equivalent of normalising to float and applying the PCM16 rule.
#[inline]
fn narrow(v: i64, shift: u32) -> i16 {
    let half = 1i64 << (shift - 1);
    let q = if v >= 0 {
        (v + half) >> shift
    } else {
        -((half - v) >> shift)
    };
    q.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Convert the samples of `info` to little-endian PCM16 in `out`, which must
/// hold [`WavInfo::pcm16_len`] bytes.
pub fn decode_into(info: &WavInfo<'_>, out: &mut [u8]) {
    let data = info.data;
    let frames = out.chunks_exact_mut(2);
    match (info.encoding, info.bits_per_sample) {
        (Encoding::Pcm, 16) => {
            let n = out.len().min(data.len());
            if let (Some(o), Some(d)) = (out.get_mut(..n), data.get(..n)) {
                o.copy_from_slice(d);
            }
        }
        (Encoding::Pcm, 8) => {
            for (o, &b) in frames.zip(data) {
                o.copy_from_slice(&((b as i16 - 128) << 8).to_le_bytes());
            }
        }
        (Encoding::Pcm, 24) => {
            for (o, s) in frames.zip(data.chunks_exact(3)) {
                if let &[a, b, c] = s {
                    // Place the 24 bits at the top of an i32, then shift back
                    // down to sign-extend.
                    let v = i32::from_le_bytes([0, a, b, c]) >> 8;
                    o.copy_from_slice(&narrow(v.into(), 8).to_le_bytes());
                }
            }
        }
        (Encoding::Pcm, _) => {
            map_le_to_pcm16_bytes(data, out, i32::from_le_bytes, |v| narrow(v.into(), 16))
        }
        (Encoding::Float, 32) => {
            map_le_to_pcm16_bytes(data, out, f32::from_le_bytes, f32_to_i16_fast)
        }
        (Encoding::Float, _) => map_le_to_pcm16_bytes(data, out, f64::from_le_bytes, f64_to_i16),
        (Encoding::ALaw, _) => crate::g711::decode_into(&ALAW_DECODE, data, out),
        (Encoding::MuLaw, _) => crate::g711::decode_into(&ULAW_DECODE, data, out),
    }
}

/// The canonical 44-byte header for `data_len` bytes of PCM16.
/// `data_len` must be at most `u32::MAX - 36` (checked by the callers).
pub fn header(data_len: u32, sample_rate: u32, channels: u16) -> [u8; HEADER_LEN] {
    let block_align = channels.wrapping_mul(2);
    let byte_rate = sample_rate.wrapping_mul(u32::from(block_align));
    let mut h = [0u8; HEADER_LEN];
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &data_len.wrapping_add(36).to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &16u32.to_le_bytes(),
        &TAG_PCM.to_le_bytes(),
        &channels.to_le_bytes(),
        &sample_rate.to_le_bytes(),
        &byte_rate.to_le_bytes(),
        &block_align.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        if let Some(dst) = h.get_mut(at..at + f.len()) {
            dst.copy_from_slice(f);
        }
        at += f.len();
    }
    h
}

/// The decoded result of `wav_decode`: PCM16 audio plus its format.
#[pyclass(frozen, module = "fastvoice._fastvoice")]
pub struct WavAudio {
    /// Interleaved little-endian PCM16 samples.
    #[pyo3(get)]
    pcm16: Py<PyBytes>,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    channels: u16,
    /// Bits per sample of the source file.
    #[pyo3(get)]
    bits_per_sample: u16,
    /// Sample encoding of the source file: "pcm", "float", "alaw" or "ulaw".
    #[pyo3(get)]
    format: &'static str,
    frames: usize,
}

#[pymethods]
impl WavAudio {
    /// Number of frames (samples per channel).
    #[getter]
    fn num_frames(&self) -> usize {
        self.frames
    }

    #[getter]
    fn duration_s(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate)
    }

    fn __repr__(&self) -> String {
        format!(
            "WavAudio(sample_rate={}, channels={}, num_frames={}, duration_s={:.3}, format='{}', bits_per_sample={})",
            self.sample_rate,
            self.channels,
            self.frames,
            self.duration_s(),
            self.format,
            self.bits_per_sample
        )
    }
}

/// `wav_decode(data) -> WavAudio`.
#[pyfunction]
fn wav_decode(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<WavAudio> {
    let buf = AudioBuffer::get(data)?;
    let bytes = buf.bytes();
    // Parsing is a few lookups for real files, but a crafted file can hold
    // millions of tiny chunks: walk large buffers without the GIL.
    let parsed = if bytes.len() >= DETACH_THRESHOLD_BYTES {
        py.detach(|| parse(bytes))
    } else {
        parse(bytes)
    };
    let info = parsed.map_err(|e| audio_err(e.0))?;
    let pcm16 = if info.encoding == Encoding::Pcm && info.bits_per_sample == 16 {
        bytes_copy(py, info.data)?
    } else {
        new_bytes_with(py, info.pcm16_len(), |o| decode_into(&info, o))?
    };
    Ok(WavAudio {
        pcm16: pcm16.unbind(),
        sample_rate: info.sample_rate,
        channels: info.channels,
        bits_per_sample: info.bits_per_sample,
        format: info.encoding.name(),
        frames: info.frames(),
    })
}

/// `wav_encode(pcm16, sample_rate=24000, channels=1) -> bytes`: a canonical
/// 16-bit PCM WAV. Float arrays are converted with the PCM16 rule.
#[pyfunction]
#[pyo3(signature = (pcm16, sample_rate = 24000, channels = 1))]
fn wav_encode<'py>(
    py: Python<'py>,
    pcm16: &Bound<'py, PyAny>,
    sample_rate: i64,
    channels: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let Ok(rate @ 1..) = u32::try_from(sample_rate) else {
        return Err(audio_err(format!(
            "sample_rate must be between 1 and 4294967295, got {sample_rate}"
        )));
    };
    let Ok(ch @ 1..) = u16::try_from(channels) else {
        return Err(audio_err(format!(
            "channels must be between 1 and 65535, got {channels}"
        )));
    };
    let buf = AudioBuffer::get(pcm16)?;
    let samples = buf.samples()?;
    let n = samples.len();
    if n % usize::from(ch) != 0 {
        return Err(audio_err(format!(
            "{n} samples is not a whole number of {ch}-channel frames"
        )));
    }
    let data_len = n
        .checked_mul(2)
        .and_then(|b| u32::try_from(b).ok())
        .filter(|&b| b <= u32::MAX - 36)
        .ok_or_else(|| {
            audio_err(format!(
                "{n} samples are too many for a WAV file (4 GiB limit)"
            ))
        })?;
    let head = header(data_len, rate, ch);
    new_bytes_with(py, HEADER_LEN + n * 2, |o| {
        let (h, body) = o.split_at_mut(HEADER_LEN);
        h.copy_from_slice(&head);
        match &samples {
            Samples::I16(s) => i16_to_pcm16_bytes(s, body),
            Samples::F32(s) => f32_to_pcm16_bytes(s, body),
            Samples::F64(s) => f64_to_pcm16_bytes(s, body),
        }
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WavAudio>()?;
    m.add_function(wrap_pyfunction!(wav_encode, m)?)?;
    m.add_function(wrap_pyfunction!(wav_decode, m)?)?;
    Ok(())
}

#[cfg(test)]
#[path = "wav_tests.rs"]
mod tests;
