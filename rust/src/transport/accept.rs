//! The server side: a WebSocket whose HTTP upgrade a Python web server (aiohttp)
//! already read, handed over as a socket so the frames never touch Python.
//!
//! Python validates the upgrade request and computes the `101 Switching
//! Protocols` response; [`transport_accept`] takes ownership of a duplicate of
//! the socket's descriptor, writes that response, and from then on the
//! connection is an ordinary [`NativeConnection`] (server role: frames it sends
//! are not masked). A phone provider's media stream then gets its caller fast
//! paths with [`caller_attach`] (see [`super::caller`]).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::caller::{CallerMedia, CallerSettings, CallerShared, Framing, RingSide};
use super::connect::ConnectFailure;
use super::connection::{spawn_pending, LoopWaker, NativeConnection, PendingConnect};
use super::driver::with_driver;
use super::media::Codec;
use super::settings::settings;
use crate::ring::RingBuffer;

/// Take over an upgraded socket: `fd` (owned from now on, closed by us) gets
/// `response` (the 101 head) written, then speaks WebSocket as the server.
#[pyfunction]
#[pyo3(signature = (fd, response, waker, *, ping_interval, ping_timeout, close_timeout,
                    max_message_size, max_queue, max_queue_bytes))]
#[allow(clippy::too_many_arguments)]
pub fn transport_accept(
    fd: i32,
    response: Vec<u8>,
    waker: &LoopWaker,
    ping_interval: Option<f64>,
    ping_timeout: f64,
    close_timeout: f64,
    max_message_size: usize,
    max_queue: usize,
    max_queue_bytes: usize,
) -> PyResult<PendingConnect> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "invalid file descriptor {fd}"
        )));
    }
    // SAFETY: the caller passes a descriptor it owns and will not use again
    // (a dup of the accepted socket); from here it is closed exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (timing, limits, config) = settings(
        ping_interval,
        ping_timeout,
        close_timeout,
        max_message_size,
        max_queue,
        max_queue_bytes,
    )?;
    let std_stream = std::net::TcpStream::from(owned);
    std_stream
        .set_nonblocking(true)
        .map_err(|e| PyValueError::new_err(format!("not a usable socket: {e}")))?;
    let open =
        async move {
            let fail = |what: &str, e: std::io::Error| ConnectFailure::new(format!("{what}: {e}"));
            let mut tcp = tokio::net::TcpStream::from_std(std_stream)
                .map_err(|e| fail("cannot adopt the socket", e))?;
            let _ = tcp.set_nodelay(true);
            tcp.write_all(&response)
                .await
                .map_err(|e| fail("cannot answer the upgrade", e))?;
            Ok(WebSocketStream::from_raw_socket(
                MaybeTlsStream::Plain(tcp),
                Role::Server,
                Some(config),
            )
            .await)
        };
    spawn_pending(limits, timing, false, waker, open)
}

fn codec(name: &str) -> PyResult<Codec> {
    Codec::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown audio encoding {name:?} (expected audio/pcmu, audio/pcma or audio/pcm)"
        ))
    })
}

fn rate(name: &str, v: u32) -> PyResult<u32> {
    if (1000..=384_000).contains(&v) {
        Ok(v)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be within 1000..384000 Hz, got {v}"
        )))
    }
}

/// A caller's media stream running natively on a connection.
#[pyclass(frozen, name = "CallerStream", module = "fastvoice._fastvoice")]
pub struct CallerStream {
    shared: Arc<CallerShared>,
    conn: Py<NativeConnection>,
}

/// Install the caller fast paths on `conn` (see [`super::caller`]); `early`:
/// text (and `early_binary`: binary) frames Python already read, media that
/// came before the stream was attached.
#[pyfunction]
#[pyo3(signature = (conn, *, media_prefix, media_suffix, mark_prefix, mark_suffix, clear,
                    media_event, ack_event, binary = false, encoding, sample_rate, big_endian = false, mic, mic_rate, mic_codes,
                    playback, playback_rate, playback_codes, early = Vec::new(), early_binary = Vec::new(),
                    frame_ms = 20,
                    lead_ms = 60, mark_every = 5))]
#[allow(clippy::too_many_arguments)]
pub fn caller_attach(
    py: Python<'_>,
    conn: Py<NativeConnection>,
    media_prefix: &str,
    media_suffix: &str,
    mark_prefix: &str,
    mark_suffix: &str,
    clear: &str,
    media_event: &str,
    ack_event: &str,
    binary: bool,
    encoding: &str,
    sample_rate: u32,
    big_endian: bool,
    mic: Py<RingBuffer>,
    mic_rate: u32,
    mic_codes: bool,
    playback: Py<RingBuffer>,
    playback_rate: u32,
    playback_codes: bool,
    early: Vec<String>,
    early_binary: Vec<Vec<u8>>,
    frame_ms: u32,
    lead_ms: u32,
    mark_every: u32,
) -> PyResult<CallerStream> {
    if !(5..=200).contains(&frame_ms) || lead_ms > 2000 || mark_every == 0 {
        return Err(PyValueError::new_err(
            "frame_ms must be within 5..200, lead_ms at most 2000, mark_every positive",
        ));
    }
    let cfg = CallerSettings {
        framing: Framing {
            media_prefix: media_prefix.as_bytes().to_vec(),
            media_suffix: media_suffix.as_bytes().to_vec(),
            mark_prefix: mark_prefix.as_bytes().to_vec(),
            mark_suffix: mark_suffix.as_bytes().to_vec(),
            clear: clear.to_owned(),
            media_event: media_event.as_bytes().to_vec(),
            ack_event: ack_event.as_bytes().to_vec(),
            binary,
        },
        codec: codec(encoding)?,
        big_endian,
        rate: rate("sample_rate", sample_rate)?,
        mic: RingSide {
            ring: mic,
            rate: rate("mic_rate", mic_rate)?,
            codes: mic_codes,
        },
        play: RingSide {
            ring: playback,
            rate: rate("playback_rate", playback_rate)?,
            codes: playback_codes,
        },
        frame: Duration::from_millis(u64::from(frame_ms)),
        lead: Duration::from_millis(u64::from(lead_ms)),
        mark_every,
    };
    let (mut media, shared) = CallerMedia::new(cfg).map_err(PyValueError::new_err)?;
    let native = conn.get();
    let (link, driver) = native.parts();
    let (link, driver) = (link.clone(), driver.clone());
    py.detach(|| {
        // Under the driver's lock no frame is read meanwhile, so the caller's
        // audio keeps its order: what Python read, then what it had not read
        // yet, then what the stream reads from now on.
        with_driver(&driver, |d| {
            for frame in &early {
                media.route(frame.as_bytes());
            }
            for frame in &early_binary {
                media.route_binary(frame);
            }
            link.take_where(|frame, binary| {
                if binary {
                    media.route_binary(frame)
                } else {
                    media.route(frame)
                }
            });
            d.set_caller(Some(media));
        })
    });
    link.driver.wake();
    Ok(CallerStream { shared, conn })
}

#[pymethods]
impl CallerStream {
    /// The caller's position in the playback ring's `consumed` numbering.
    #[getter]
    fn heard(&self) -> u64 {
        self.shared.heard()
    }

    /// Drop buffered playback here and at the provider (its clear message).
    fn clear(&self) {
        self.shared.request_clear();
        self.conn.get().parts().0.driver.wake();
    }

    /// Route one text frame Python received (before the stream was attached);
    /// `True` if it was caller media or one of our mark acknowledgements.
    fn feed(&self, py: Python<'_>, frame: &str) -> bool {
        let driver = self.conn.get().parts().1.clone();
        py.detach(|| with_driver(&driver, |d| d.route_caller(frame.as_bytes())))
            .unwrap_or(false)
    }

    /// `(frames_in, frames_out, marks_acked, underruns, bad_frames, max_late_us)`.
    #[getter]
    fn stats(&self) -> (u64, u64, u64, u64, u64, u64) {
        let s = &self.shared;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        (
            get(&s.frames_in),
            get(&s.frames_out),
            get(&s.marks_acked),
            get(&s.underruns),
            get(&s.bad_frames),
            get(&s.max_late_us),
        )
    }
}
