//! The checked settings a connection runs with, client or server side:
//! keepalive timing, queue bounds and tungstenite's frame limits.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::bridge::Limits;
use super::driver::Timing;

/// A duration argument, bounded so deadline arithmetic (`Instant + Duration`)
/// cannot overflow.
pub fn seconds(name: &str, v: f64) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(v) {
        Ok(d) if v > 0.0 && v <= 1e9 => Ok(d),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be a number of seconds in (0, 1e9], got {v}"
        ))),
    }
}

/// The checked keepalive, queue and frame settings a connection (client or
/// server side) runs with.
pub fn settings(
    ping_interval: Option<f64>,
    ping_timeout: f64,
    close_timeout: f64,
    max_message_size: usize,
    max_queue: usize,
    max_queue_bytes: usize,
) -> PyResult<(Timing, Limits, WebSocketConfig)> {
    if max_message_size == 0 || max_queue == 0 || max_queue_bytes == 0 {
        return Err(PyValueError::new_err(
            "max_message_size, max_queue and max_queue_bytes must be positive",
        ));
    }
    let timing = Timing {
        ping_interval: ping_interval
            .map(|v| seconds("ping_interval", v))
            .transpose()?,
        ping_timeout: seconds("ping_timeout", ping_timeout)?,
        close_timeout: seconds("close_timeout", close_timeout)?,
    };
    let limits = Limits {
        max_queue,
        max_queue_bytes,
        max_message_size,
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer_size())
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size));
    Ok((timing, limits, config))
}

/// Bytes tungstenite reads per call. It zero-fills this much of its buffer
/// before every read (including the ones that find the socket empty), so a big
/// value costs a large memset per wake-up; 16 KiB still takes a 6.4 KB frame,
/// or several 20 ms audio deltas, in one read. `FASTVOICE_TRANSPORT_READ_BUF`
/// overrides it (for measurements).
fn read_buffer_size() -> usize {
    std::env::var("FASTVOICE_TRANSPORT_READ_BUF")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| (1024..=1 << 24).contains(&n))
        .unwrap_or(16 * 1024)
}
