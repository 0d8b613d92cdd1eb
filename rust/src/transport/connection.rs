//! The Python-facing native objects: a loop's wake-up channel, a pending
//! connect and an open connection. The asyncio logic (awaiting, iteration,
//! context managers) lives in `fastvoice/transport/_connection.py`; these
//! methods never block and never wait for the tokio thread: each either does
//! its work at once or arms a wake-up and tells Python to await.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::audio;
use super::bridge::{next_id, End, Incoming, Limits, LoopSignal, Offered, Shared, Taken};
use super::connect::{self, ConnectArgs, ConnectFailure, Ws};
use super::driver::{with_driver, write_now, Driver, DriverCell, DriverTask, Timing};
use super::errors::{closed_error, connect_error, end_error, too_big};
use super::media::{Codec, InputPump, ItemState, OutputSink, PumpSettings, Retained};
use super::runtime;
use super::settings::{seconds, settings};
use crate::buffer::{new_bytes_with, AudioBuffer, DETACH_THRESHOLD_BYTES};
use crate::ring::RingBuffer;
use crate::sync::lock;

/// One per asyncio loop; Python watches `fileno()` with `loop.add_reader`.
#[pyclass(frozen, name = "TransportLoopWaker", module = "fastvoice._fastvoice")]
pub struct LoopWaker {
    signal: Arc<LoopSignal>,
}

#[pymethods]
impl LoopWaker {
    /// Without `callback`, wake-ups go through an eventfd; with it, the tokio
    /// thread calls `callback()` under the GIL (the call_soon_threadsafe design).
    #[new]
    #[pyo3(signature = (callback = None))]
    fn new(callback: Option<Py<PyAny>>) -> PyResult<Self> {
        let signal = match callback {
            Some(cb) => LoopSignal::with_callback(cb),
            None => LoopSignal::with_fd()
                .map_err(|e| PyRuntimeError::new_err(format!("wake-up fd: {e}")))?,
        };
        Ok(LoopWaker {
            signal: Arc::new(signal),
        })
    }

    fn fileno(&self) -> Option<i32> {
        self.signal.fd()
    }

    /// Clear the wake-up and return the ids of connections with news.
    fn drain(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        self.signal.drain(&mut ids);
        ids
    }
}

enum Slot {
    Waiting,
    Done(Result<(Arc<Shared>, Weak<DriverCell>), ConnectFailure>),
    Taken,
    Abandoned,
}

struct PendingState {
    slot: Mutex<Slot>,
}

impl PendingState {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connect in progress on the runtime.
#[pyclass(frozen, name = "TransportPending", module = "fastvoice._fastvoice")]
pub struct PendingConnect {
    #[pyo3(get)]
    id: u64,
    state: Arc<PendingState>,
    abort: AbortHandle,
}

#[pymethods]
impl PendingConnect {
    /// The connection once open, `None` while connecting; raises `ConnectError`.
    fn result(&self, py: Python<'_>) -> PyResult<Option<NativeConnection>> {
        let mut slot = self.state.slot();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Waiting => {
                *slot = Slot::Waiting;
                Ok(None)
            }
            Slot::Done(Ok((shared, driver))) => Ok(Some(NativeConnection::new(shared, driver))),
            Slot::Done(Err(f)) => Err(connect_error(py, f)),
            Slot::Taken | Slot::Abandoned => {
                Err(PyRuntimeError::new_err("connect result already taken"))
            }
        }
    }

    /// Stop connecting (the caller was cancelled); a connection that opened
    /// meanwhile is closed.
    fn cancel(&self) {
        abandon(&self.state, &self.abort);
    }
}

fn abandon(state: &PendingState, abort: &AbortHandle) {
    let mut slot = state.slot();
    match std::mem::replace(&mut *slot, Slot::Abandoned) {
        Slot::Waiting => abort.abort(),
        Slot::Done(Ok((shared, _))) => shared.request_close(1000, ""),
        Slot::Taken => *slot = Slot::Taken,
        Slot::Done(Err(_)) | Slot::Abandoned => {}
    }
}

impl Drop for PendingConnect {
    fn drop(&mut self) {
        abandon(&self.state, &self.abort);
    }
}

/// Keeps the runtime's registry of live connections exact even when the task
/// is dropped at runtime shutdown, and wakes any waiter then.
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.finish(End {
            code: 1006,
            reason: "transport runtime shut down".into(),
            kind: super::bridge::EndKind::Closed,
        });
        runtime::unregister_live(self.0.id);
    }
}

/// Start connecting; the loop is signalled with the pending id when done.
#[pyfunction]
#[pyo3(signature = (url, headers, waker, *, open_timeout, ping_interval, ping_timeout, close_timeout,
                    max_message_size, max_queue, max_queue_bytes, ca_file, allow_insecure_ws, decode_audio))]
#[allow(clippy::too_many_arguments)]
pub fn transport_connect(
    url: &str,
    headers: Vec<(String, String)>,
    waker: &LoopWaker,
    open_timeout: f64,
    ping_interval: Option<f64>,
    ping_timeout: f64,
    close_timeout: f64,
    max_message_size: usize,
    max_queue: usize,
    max_queue_bytes: usize,
    ca_file: Option<&str>,
    allow_insecure_ws: bool,
    decode_audio: bool,
) -> PyResult<PendingConnect> {
    let (timing, limits, config) = settings(
        ping_interval,
        ping_timeout,
        close_timeout,
        max_message_size,
        max_queue,
        max_queue_bytes,
    )?;
    let prepared = connect::prepare(ConnectArgs {
        url,
        headers,
        open_timeout: seconds("open_timeout", open_timeout)?,
        ca_file,
        allow_insecure_ws,
        config,
    })
    .map_err(PyValueError::new_err)?;
    spawn_pending(limits, timing, decode_audio, waker, async move {
        connect::open(prepared).await
    })
}

/// Run `open` on the runtime, then drive the WebSocket it yields until it ends;
/// the loop is signalled with the pending id once it is open (or failed).
pub(super) fn spawn_pending(
    limits: Limits,
    timing: Timing,
    decode_audio: bool,
    waker: &LoopWaker,
    open: impl Future<Output = Result<Ws, ConnectFailure>> + Send + 'static,
) -> PyResult<PendingConnect> {
    let id = next_id();
    let state = Arc::new(PendingState {
        slot: Mutex::new(Slot::Waiting),
    });
    let signal = waker.signal.clone();
    let task_state = state.clone();
    let task = async move {
        let ws = match open.await {
            Ok(ws) => ws,
            Err(f) => {
                *task_state.slot() = Slot::Done(Err(f));
                signal.notify(id);
                return;
            }
        };
        let shared = Arc::new(Shared::new(id, limits, signal.clone()));
        runtime::register_live(&shared);
        let guard = LiveGuard(shared.clone());
        let driver = Arc::new(Mutex::new(Driver::new(
            ws,
            shared.clone(),
            decode_audio,
            timing,
        )));
        {
            let mut slot = task_state.slot();
            if matches!(*slot, Slot::Abandoned) {
                shared.request_close(1000, "");
            } else {
                *slot = Slot::Done(Ok((shared.clone(), Arc::downgrade(&driver))));
            }
        }
        signal.notify(id);
        drop(task_state);
        let end = DriverTask(driver).await;
        shared.finish(end);
        drop(guard);
    };
    let handle = runtime::handle()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the transport runtime: {e}")))?;
    let abort = handle.spawn(task).abort_handle();
    Ok(PendingConnect { id, state, abort })
}

/// An open connection's native half.
#[pyclass(frozen, name = "TransportConnection", module = "fastvoice._fastvoice")]
pub struct NativeConnection {
    shared: Arc<Shared>,
    driver: Weak<DriverCell>,
    /// Reused between batches so steady-state receiving does not allocate here.
    scratch: Mutex<Vec<Incoming>>,
    /// The native playback sink, shared with the driver.
    sink: Mutex<Option<Arc<OutputSink>>>,
    /// Samples sent by input pumps over the connection's life.
    input_sent: Arc<AtomicU64>,
    /// Input audio the pumps sent and the session has not taken yet.
    input_retained: Arc<Mutex<Retained>>,
    /// Output audio bytes decoded by the sinks over the connection's life.
    output_received: Arc<AtomicU64>,
}

/// `(item_id, content_index, response_id, received_bytes, ring_start)`.
type ItemTuple = (String, i64, String, u64, u64);

fn item_tuple(s: ItemState) -> ItemTuple {
    (
        s.item_id,
        s.content_index,
        s.response_id,
        s.received_bytes,
        s.ring_start,
    )
}

fn codec(name: &str) -> PyResult<Codec> {
    Codec::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown audio encoding {name:?} (expected pcm16, pcmu or pcma)"
        ))
    })
}

impl NativeConnection {
    pub(super) fn parts(&self) -> (&Arc<Shared>, &Weak<DriverCell>) {
        (&self.shared, &self.driver)
    }

    fn new(shared: Arc<Shared>, driver: Weak<DriverCell>) -> Self {
        NativeConnection {
            shared,
            driver,
            scratch: Mutex::new(Vec::with_capacity(64)),
            sink: Mutex::new(None),
            input_sent: Arc::new(AtomicU64::new(0)),
            input_retained: Arc::new(Mutex::new(Retained::default())),
            output_received: Arc::new(AtomicU64::new(0)),
        }
    }

    fn offer(&self, py: Python<'_>, msg: Message, weight: usize) -> PyResult<bool> {
        match self.shared.offer(msg, weight) {
            Ok(Offered::Queued { first: true }) => {
                // Write it from this thread when the driver is idle; large
                // frames are masked and written without the GIL.
                let written = if weight >= DETACH_THRESHOLD_BYTES {
                    py.detach(|| write_now(&self.driver))
                } else {
                    write_now(&self.driver)
                };
                if !written {
                    self.shared.driver.wake();
                }
                Ok(true)
            }
            Ok(Offered::Queued { first: false }) => Ok(true),
            Ok(Offered::Full) => Ok(false),
            Err(Some(end)) => Err(closed_error(py, end.code, &end.reason)),
            Err(None) => Err(closed_error(py, 1000, "closing")),
        }
    }

    fn output_sink(&self) -> Option<Arc<OutputSink>> {
        lock(&self.sink).clone()
    }

    fn check_size(&self, py: Python<'_>, size: usize) -> PyResult<()> {
        let limit = self.shared.limits.max_message_size;
        if size > limit {
            return Err(too_big(py, size, limit));
        }
        Ok(())
    }
}

fn to_py(py: Python<'_>, msg: Incoming) -> PyResult<Bound<'_, PyAny>> {
    Ok(match msg {
        Incoming::Text(text) => PyString::new(py, text.as_str()).into_any(),
        Incoming::Binary(data) => {
            new_bytes_with(py, data.len(), |buf| buf.copy_from_slice(&data))?.into_any()
        }
        Incoming::Audio(parts, _) => audio::into_py(py, parts)?,
    })
}

/// Copy `data` into an owned buffer, without the GIL when it is large.
fn owned(py: Python<'_>, data: &[u8]) -> Bytes {
    if data.len() >= DETACH_THRESHOLD_BYTES {
        py.detach(|| Bytes::copy_from_slice(data))
    } else {
        Bytes::copy_from_slice(data)
    }
}

#[pymethods]
impl NativeConnection {
    #[getter]
    fn id(&self) -> u64 {
        self.shared.id
    }

    /// One message, or `None` (waiter armed) when nothing is queued.
    fn recv_one<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        match self.shared.take(1, &mut scratch) {
            Taken::Some => match scratch.pop() {
                Some(msg) => Ok(Some(to_py(py, msg)?)),
                None => Ok(None),
            },
            Taken::Armed => Ok(None),
            Taken::Ended(end, first) => Err(end_error(py, &end, first)),
        }
    }

    /// Up to `max_n` queued messages as a list, or `None` (waiter armed).
    fn recv_batch<'py>(
        &self,
        py: Python<'py>,
        max_n: usize,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        if max_n == 0 {
            return Err(PyValueError::new_err("max_n must be at least 1"));
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        match self.shared.take(max_n, &mut scratch) {
            Taken::Some => {
                let list = PyList::empty(py);
                for msg in scratch.drain(..) {
                    list.append(to_py(py, msg)?)?;
                }
                Ok(Some(list))
            }
            Taken::Armed => Ok(None),
            Taken::Ended(end, first) => Err(end_error(py, &end, first)),
        }
    }

    /// Queue a text frame: `True` if queued, `False` if the queue is full (waiter armed).
    fn send_text(&self, py: Python<'_>, text: &Bound<'_, PyString>) -> PyResult<bool> {
        let s = text.to_str()?;
        self.check_size(py, s.len())?;
        let owned = Utf8Bytes::from(s);
        self.offer(py, Message::Text(owned), s.len())
    }

    /// Queue a binary frame from any bytes-like object.
    fn send_bytes(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        // `bytes` is the common case: read it directly, no buffer view.
        let payload = if let Ok(b) = data.cast_exact::<PyBytes>() {
            self.check_size(py, b.as_bytes().len())?;
            owned(py, b.as_bytes())
        } else {
            let buf = AudioBuffer::get(data)?;
            self.check_size(py, buf.bytes().len())?;
            owned(py, buf.bytes())
        };
        let len = payload.len();
        self.offer(py, Message::Binary(payload), len)
    }

    /// Queue an `input_audio_buffer.append` frame built from PCM16 bytes, int16
    /// or float arrays (floats converted with the crate's PCM16 rule).
    fn send_audio(&self, py: Python<'_>, pcm: &Bound<'_, PyAny>) -> PyResult<bool> {
        let buf = AudioBuffer::get(pcm)?;
        let samples = buf.samples()?;
        let size = audio::append_frame_len(samples.len());
        self.check_size(py, size)?;
        let mut frame = Vec::with_capacity(size);
        if samples.len() * 2 >= DETACH_THRESHOLD_BYTES {
            py.detach(|| audio::write_append_frame(&samples, &mut frame));
        } else {
            audio::write_append_frame(&samples, &mut frame);
        }
        let len = frame.len();
        let text = Utf8Bytes::try_from(frame)
            .map_err(|_| PyRuntimeError::new_err("audio frame is not UTF-8 (wire module bug)"))?;
        self.offer(py, Message::Text(text), len)
    }

    /// Route audio deltas into `ring` (PCM16 or float32 samples at the output
    /// rate; G.711 is decoded) instead of delivering them; `None` stops.
    /// `codes`: keep G.711 codes as they are, one per sample slot (for a
    /// native reader that forwards them, see `transport::caller`).
    #[pyo3(signature = (ring = None, encoding = "pcm16", *, codes = false))]
    fn set_audio_output(
        &self,
        py: Python<'_>,
        ring: Option<Py<RingBuffer>>,
        encoding: &str,
        codes: bool,
    ) -> PyResult<()> {
        let codec = codec(encoding)?;
        let received = &self.output_received;
        let sink = ring.map(|r| Arc::new(OutputSink::new(r, codec, codes, received.clone())));
        *lock(&self.sink) = sink.clone();
        // Never wait for the driver lock holding the GIL: its holder may need
        // the GIL (the call_soon wake-up mode calls Python from the worker).
        py.detach(|| with_driver(&self.driver, |d| d.set_sink(sink)));
        Ok(())
    }

    /// The item the output sink is filling, or `None`.
    fn audio_output_state(&self) -> Option<ItemTuple> {
        self.output_sink()?.state().map(item_tuple)
    }

    /// Stop the current output item now (see `OutputSink::cut`).
    #[pyo3(signature = (discard_response = None))]
    fn cut_audio_output(&self, discard_response: Option<&str>) -> Option<ItemTuple> {
        self.output_sink()?.cut(discard_response).map(item_tuple)
    }

    fn reset_audio_output(&self) {
        if let Some(sink) = self.output_sink() {
            sink.reset();
        }
    }

    /// Bytes of output audio the sink dropped (interrupted responses, overflow).
    #[getter]
    fn audio_output_dropped(&self) -> u64 {
        self.output_sink().map_or(0, |s| s.dropped_bytes())
    }

    /// Wire bytes of output audio the sinks decoded over the connection's life
    /// (written, interrupted or refused by the ring; invalid deltas excluded).
    #[getter]
    fn audio_output_received(&self) -> u64 {
        self.output_received.load(Ordering::Relaxed)
    }

    /// Send what `ring` holds as append frames every `chunk_ms` from the
    /// connection's task (`pace`: at most real time); `None` stops.
    /// `retain_bytes`: keep up to that many wire bytes of what was sent, for
    /// `take_audio_input_retained` (`None`: keep nothing).
    #[pyo3(signature = (ring = None, encoding = "pcm16", sample_rate = 24000, chunk_ms = 20.0, pace = false, retain_bytes = None, *, codes = false))]
    #[allow(clippy::too_many_arguments)]
    fn set_audio_input(
        &self,
        py: Python<'_>,
        ring: Option<Py<RingBuffer>>,
        encoding: &str,
        sample_rate: u32,
        chunk_ms: f64,
        pace: bool,
        retain_bytes: Option<usize>,
        codes: bool,
    ) -> PyResult<()> {
        let codec = codec(encoding)?;
        if !(1000..=384_000).contains(&sample_rate) {
            return Err(PyValueError::new_err(format!(
                "sample_rate must be within 1000..384000 Hz, got {sample_rate}"
            )));
        }
        if !(1.0..=1000.0).contains(&chunk_ms) {
            return Err(PyValueError::new_err(format!(
                "chunk_ms must be within 1..1000, got {chunk_ms}"
            )));
        }
        let chunk = ((f64::from(sample_rate) * chunk_ms / 1000.0).round() as usize).max(1);
        let pump = ring.map(|r| {
            let cfg = PumpSettings {
                codec,
                rate: sample_rate,
                chunk,
                interval: Duration::from_secs_f64(chunk_ms / 1000.0),
                pace,
                codes: codes && codec != Codec::Pcm16,
            };
            InputPump::new(r, cfg, self.input_sent.clone(), self.input_retained.clone())
        });
        lock(&self.input_retained).limit = retain_bytes;
        py.detach(|| with_driver(&self.driver, |d| d.set_pump(pump)));
        self.shared.driver.wake();
        Ok(())
    }

    /// Queue everything the input ring holds now, ahead of later sends
    /// (call before a commit); returns the samples queued.
    fn flush_audio_input(&self, py: Python<'_>) -> usize {
        let n = py
            .detach(|| with_driver(&self.driver, Driver::flush_pump))
            .unwrap_or(0);
        if n > 0 {
            self.shared.driver.wake();
        }
        n
    }

    /// Samples sent by the input pump so far.
    #[getter]
    fn audio_input_sent(&self) -> u64 {
        self.input_sent.load(Ordering::Relaxed)
    }

    /// `(audio, evicted)`: the wire audio the pump sent since the last call
    /// (kept under `retain_bytes`), and the bytes that did not fit; both reset.
    fn take_audio_input_retained<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, u64) {
        let (audio, evicted) = lock(&self.input_retained).take();
        (PyBytes::new(py, &audio), evicted)
    }

    /// Start the closing handshake (idempotent).
    #[pyo3(signature = (code = 1000, reason = ""))]
    fn close(&self, code: u16, reason: &str) -> PyResult<()> {
        if !matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
            return Err(PyValueError::new_err(format!("invalid close code {code}")));
        }
        if reason.len() > 123 {
            return Err(PyValueError::new_err(
                "close reason must be at most 123 bytes of UTF-8",
            ));
        }
        self.shared.request_close(code, reason);
        Ok(())
    }

    /// `(code, reason)` once ended; otherwise `None` with an end waiter armed.
    fn wait_end(&self) -> Option<(u16, String)> {
        self.shared
            .end_or_arm()
            .map(|e| (e.code, super::secrets::scrub(&e.reason, &[])))
    }

    /// `(inbox messages, inbox bytes, reader paused, outbox messages, armed bits)`
    /// for tests and debugging.
    fn queue_state(&self) -> (usize, usize, bool, usize, u8) {
        let st = self.shared.lock();
        (
            st.inbox.len(),
            st.inbox_bytes,
            st.read_paused,
            st.outbox.len(),
            st.want,
        )
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.end().is_some()
    }

    #[getter]
    fn close_code(&self) -> Option<u16> {
        self.shared.end().map(|e| e.code)
    }

    #[getter]
    fn close_reason(&self) -> Option<String> {
        self.shared
            .end()
            .map(|e| super::secrets::scrub(&e.reason, &[]))
    }
}

impl Drop for NativeConnection {
    fn drop(&mut self) {
        // Dropped without close(): leave politely rather than leak the task.
        self.shared.request_close(1001, "");
    }
}

/// Close all connections and stop the runtime (registered with `atexit`).
#[pyfunction]
#[pyo3(signature = (grace = 1.0))]
pub fn transport_shutdown(py: Python<'_>, grace: f64) {
    let grace = Duration::from_secs_f64(if grace.is_finite() {
        grace.clamp(0.0, 60.0)
    } else {
        1.0
    });
    py.detach(|| runtime::shutdown(grace));
}

/// Whether the shared runtime exists (it is created by the first connect).
#[pyfunction]
pub fn transport_runtime_running() -> bool {
    runtime::is_running()
}
