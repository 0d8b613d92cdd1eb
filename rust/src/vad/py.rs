//! The `VAD` and `VADEvent` Python classes over [`Vad`].
//!
//! `push` borrows the caller's buffer without copying (PCM16 bytes, int16,
//! float32 or float64 arrays) and runs with the GIL released on large chunks.
//! The event vector lives in the object and is reused, so a chunk without
//! events costs no allocation beyond the empty list returned.

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::{EventKind, Vad, VadConfig, VadEvent};
use crate::buffer::{AudioBuffer, Samples, DETACH_THRESHOLD_BYTES};
use crate::errors::audio_err;

/// A speech boundary found by [`VAD`].
#[pyclass(frozen, eq, module = "fastvoice._fastvoice", name = "VADEvent")]
#[derive(Clone, Copy, PartialEq)]
pub struct VADEvent {
    event: VadEvent,
    sample_rate: u32,
}

#[pymethods]
impl VADEvent {
    /// `"start"` or `"stop"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.event.kind {
            EventKind::Start => "start",
            EventKind::Stop => "stop",
        }
    }

    #[getter]
    fn sample(&self) -> u64 {
        self.event.sample
    }

    #[getter]
    fn padded_sample(&self) -> u64 {
        self.event.padded_sample
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// `sample` in seconds.
    #[getter]
    fn time_s(&self) -> f64 {
        self.event.sample as f64 / f64::from(self.sample_rate)
    }

    /// `padded_sample` in seconds.
    #[getter]
    fn padded_time_s(&self) -> f64 {
        self.event.padded_sample as f64 / f64::from(self.sample_rate)
    }

    fn __repr__(&self) -> String {
        format!(
            "VADEvent(kind={:?}, sample={}, padded_sample={}, time_s={:.3})",
            self.kind(),
            self.event.sample,
            self.event.padded_sample,
            self.time_s()
        )
    }
}

/// Streaming voice activity detector (energy over an adaptive noise floor,
/// zero-crossing rate, hangover). One stream per object: a second thread pushing
/// while a GIL-released push runs gets pyo3's "Already borrowed" RuntimeError.
#[pyclass(module = "fastvoice._fastvoice", name = "VAD")]
pub struct VAD {
    vad: Vad,
    events: Vec<VadEvent>,
}

fn feed(vad: &mut Vad, samples: &Samples<'_>, events: &mut Vec<VadEvent>) {
    match samples {
        Samples::I16(s) => vad.push_i16(s, events),
        Samples::F32(s) => vad.push_f32(s, events),
        Samples::F64(s) => vad.push_f64(s, events),
    }
}

impl VAD {
    fn to_list<'py>(&self, py: Python<'py>, events: &[VadEvent]) -> PyResult<Bound<'py, PyList>> {
        let rate = self.vad.config().sample_rate;
        PyList::new(
            py,
            events.iter().map(|&event| VADEvent {
                event,
                sample_rate: rate,
            }),
        )
    }
}

#[pymethods]
impl VAD {
    #[new]
    #[pyo3(signature = (
        sample_rate = 16000,
        frame_ms = 20,
        threshold_db = -45.0,
        min_speech_ms = 100,
        hangover_ms = 500,
        prefix_padding_ms = 300,
        snr_db = 10.0,
        max_zero_crossing_rate = 0.4,
        noise_window_ms = 1500,
    ))]
    // Spelled out: pyo3 renders the negative default as `...`, which stubtest flags.
    #[pyo3(
        text_signature = "(sample_rate=16000, frame_ms=20, threshold_db=-45.0, min_speech_ms=100, \
                          hangover_ms=500, prefix_padding_ms=300, snr_db=10.0, \
                          max_zero_crossing_rate=0.4, noise_window_ms=1500)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        sample_rate: i64,
        frame_ms: i64,
        threshold_db: f64,
        min_speech_ms: i64,
        hangover_ms: i64,
        prefix_padding_ms: i64,
        snr_db: f64,
        max_zero_crossing_rate: f64,
        noise_window_ms: i64,
    ) -> PyResult<Self> {
        let ms = |name: &str, v: i64| {
            u32::try_from(v).map_err(|_| audio_err(format!("{name} must be >= 0, got {v}")))
        };
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(v as f32)
            } else {
                Err(audio_err(format!(
                    "{name} must be a finite number, got {v}"
                )))
            }
        };
        let cfg = VadConfig {
            sample_rate: u32::try_from(sample_rate).unwrap_or(0),
            frame_ms: u32::try_from(frame_ms).unwrap_or(0),
            threshold_db: finite("threshold_db", threshold_db)?,
            snr_db: finite("snr_db", snr_db)?,
            max_zcr: finite("max_zero_crossing_rate", max_zero_crossing_rate)?,
            min_speech_ms: ms("min_speech_ms", min_speech_ms)?,
            hangover_ms: ms("hangover_ms", hangover_ms)?,
            prefix_padding_ms: ms("prefix_padding_ms", prefix_padding_ms)?,
            noise_window_ms: ms("noise_window_ms", noise_window_ms)?,
        };
        if u32::try_from(sample_rate).is_err() {
            return Err(audio_err(format!(
                "sample_rate must be a positive number of Hz, got {sample_rate}"
            )));
        }
        if u32::try_from(frame_ms).is_err() {
            return Err(audio_err(format!(
                "frame_ms must be 10, 20 or 30, got {frame_ms}"
            )));
        }
        cfg.validate().map_err(audio_err)?;
        Ok(VAD {
            vad: Vad::new(cfg),
            events: Vec::with_capacity(8),
        })
    }

    /// Feed a chunk of any length; returns the events it completed, in order.
    fn push<'py>(
        &mut self,
        py: Python<'py>,
        samples: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let buf = AudioBuffer::get(samples)?;
        let samples = buf.samples()?;
        self.events.clear();
        let (vad, events) = (&mut self.vad, &mut self.events);
        if buf.bytes().len() >= DETACH_THRESHOLD_BYTES {
            py.detach(|| feed(vad, &samples, events));
        } else {
            feed(vad, &samples, events);
        }
        self.to_list(py, &self.events)
    }

    /// End of stream: the stop event of a segment still open (or None), then
    /// reset for a new stream.
    fn flush(&mut self) -> Option<VADEvent> {
        let rate = self.vad.config().sample_rate;
        self.vad.flush().map(|event| VADEvent {
            event,
            sample_rate: rate,
        })
    }

    /// Forget the stream (offsets restart at 0, the noise floor is re-learnt).
    fn reset(&mut self) {
        self.vad.reset();
    }

    #[getter]
    fn in_speech(&self) -> bool {
        self.vad.in_speech()
    }

    #[getter]
    fn position(&self) -> u64 {
        self.vad.position()
    }

    #[getter]
    fn level_db(&self) -> f32 {
        self.vad.level_db()
    }

    #[getter]
    fn noise_floor_db(&self) -> f32 {
        self.vad.noise_floor_db()
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.vad.config().sample_rate
    }

    #[getter]
    fn frame_samples(&self) -> usize {
        self.vad.frame_len()
    }

    fn __repr__(&self) -> String {
        let c = self.vad.config();
        format!(
            "VAD(sample_rate={}, frame_ms={}, threshold_db={}, min_speech_ms={}, hangover_ms={}, \
             prefix_padding_ms={}, snr_db={}, max_zero_crossing_rate={}, noise_window_ms={})",
            c.sample_rate,
            c.frame_ms,
            c.threshold_db,
            c.min_speech_ms,
            c.hangover_ms,
            c.prefix_padding_ms,
            c.snr_db,
            c.max_zcr,
            c.noise_window_ms
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VAD>()?;
    m.add_class::<VADEvent>()?;
    Ok(())
}
