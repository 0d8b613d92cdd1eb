//! The per-connection tokio task: one hand-written future that owns the
//! WebSocket and multiplexes writing, reading, keepalive and closing.
//!
//! A single owner (rather than split read/write halves behind a lock) keeps
//! every frame on one task without synchronisation, and lets one poll drain
//! the outbox into tungstenite's write buffer, flush once, then read a batch
//! of messages into the inbox with one lock and at most one loop wake-up.
//! Reading and writing progress independently inside the poll, so a peer that
//! stops reading cannot stall delivery of what it already sent, and vice versa.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError as WsProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::audio;
use super::bridge::{End, EndKind, Incoming, Shared};
use super::caller::CallerMedia;
use super::connect::Ws;
use super::media::{InputPump, OutputSink, Route};

/// Messages read per poll before yielding to other connections on the worker.
const READ_BUDGET: usize = 256;
/// Messages moved from the outbox per lock.
const OUT_BATCH: usize = 64;

/// Keepalive settings; `None` interval disables pings.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Duration,
    pub close_timeout: Duration,
}

pub struct Driver {
    ws: Ws,
    shared: Arc<Shared>,
    decode_audio: bool,
    timing: Timing,
    /// Taken from the outbox, not yet handed to tungstenite.
    out: VecDeque<Message>,
    /// Read this poll, not yet delivered to the inbox.
    batch: Vec<Incoming>,
    needs_flush: bool,
    ping_due: bool,
    next_ping: Option<Instant>,
    awaiting_pong: Option<Instant>,
    pending_close: Option<CloseFrame>,
    close_sent: bool,
    close_rcvd: Option<(u16, String)>,
    close_marked: bool,
    close_deadline: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    ping_seq: u64,
    /// The task's waker, so a Python thread writing directly registers the
    /// task (not itself) for socket readiness.
    task_waker: Option<Waker>,
    /// An error hit by a direct write on a Python thread, for the task to report.
    failed: Option<End>,
    /// Native audio I/O (see [`super::media`]).
    sink: Option<Arc<OutputSink>>,
    pump: Option<InputPump>,
    /// A phone caller's media stream (see [`super::caller`]).
    caller: Option<CallerMedia>,
}

impl Driver {
    pub fn new(ws: Ws, shared: Arc<Shared>, decode_audio: bool, timing: Timing) -> Self {
        let now = Instant::now();
        Driver {
            ws,
            shared,
            decode_audio,
            timing,
            out: VecDeque::with_capacity(OUT_BATCH),
            batch: Vec::with_capacity(64),
            needs_flush: false,
            ping_due: false,
            next_ping: timing.ping_interval.map(|i| now + i),
            awaiting_pong: None,
            pending_close: None,
            close_sent: false,
            close_rcvd: None,
            close_marked: false,
            close_deadline: None,
            timer: Box::pin(tokio::time::sleep_until(now + Duration::from_secs(3600))),
            timer_at: None,
            ping_seq: 0,
            task_waker: None,
            failed: None,
            sink: None,
            pump: None,
            caller: None,
        }
    }

    pub fn set_sink(&mut self, sink: Option<Arc<OutputSink>>) {
        self.sink = sink;
    }

    /// Install (or remove) the input pump; the task must be woken to arm it.
    pub fn set_pump(&mut self, pump: Option<InputPump>) {
        self.pump = pump;
    }

    /// Install (or remove) a caller stream; the task must be woken to arm it.
    pub fn set_caller(&mut self, caller: Option<CallerMedia>) {
        self.caller = caller;
    }

    /// Offer a text frame Python received to the caller stream.
    pub fn route_caller(&mut self, frame: &[u8]) -> bool {
        self.caller.as_mut().is_some_and(|c| c.route(frame))
    }

    /// Queue all of the pump's ring now, ahead of anything sent after this call.
    pub fn flush_pump(&mut self) -> usize {
        match self.pump.as_mut() {
            Some(pump) if !self.close_sent && self.pending_close.is_none() => {
                pump.flush(&self.shared)
            }
            _ => 0,
        }
    }

    fn ws(&mut self) -> Pin<&mut Ws> {
        Pin::new(&mut self.ws)
    }

    fn lost(reason: &str) -> End {
        End {
            code: 1006,
            reason: reason.into(),
            kind: EndKind::Closed,
        }
    }

    /// The end after the stream finished: the peer's close frame if we saw one.
    fn normal_end(&self) -> End {
        match &self.close_rcvd {
            Some((code, reason)) => End {
                code: *code,
                reason: reason.clone(),
                kind: EndKind::Closed,
            },
            None => Self::lost(""),
        }
    }

    /// Map a tungstenite error to how the connection ended, failing the
    /// connection with the matching close code where the protocol calls for it.
    fn error_end(&mut self, err: WsError, cx: &mut Context<'_>) -> End {
        let (code, reason, kind) = match err {
            WsError::ConnectionClosed | WsError::AlreadyClosed => return self.normal_end(),
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
                1009,
                "message too big",
                EndKind::TooBig(format!(
                    "received a message of {size} bytes, over max_message_size={max_size}"
                )),
            ),
            WsError::Capacity(e) => (1009, "message too big", EndKind::TooBig(e.to_string())),
            WsError::Utf8(e) => (
                1007,
                "invalid UTF-8",
                EndKind::Protocol(format!("invalid UTF-8 in a text message: {e}")),
            ),
            WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake) => {
                return match &self.close_rcvd {
                    Some(_) => self.normal_end(),
                    None => Self::lost(""),
                }
            }
            WsError::Protocol(e) => (1002, "protocol error", EndKind::Protocol(e.to_string())),
            WsError::AttackAttempt => (
                1002,
                "protocol error",
                EndKind::Protocol("attack attempt".into()),
            ),
            WsError::Io(_) => {
                return match self.close_rcvd {
                    Some(_) => self.normal_end(),
                    None => Self::lost(""),
                }
            }
            other => return Self::lost(&other.to_string()),
        };
        // Best effort: tell the peer why, without waiting for it.
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if self.ws().start_send(Message::Close(Some(frame))).is_ok() {
            let _ = self.ws().poll_flush(cx);
        }
        End {
            code,
            reason: reason.into(),
            kind,
        }
    }

    fn has_output(&mut self) -> bool {
        if self.ping_due || !self.out.is_empty() {
            return true;
        }
        if !self.close_sent {
            self.shared.take_outgoing(&mut self.out, OUT_BATCH);
        }
        !self.out.is_empty() || self.pending_close.is_some()
    }

    /// Hand queued messages to tungstenite and flush. Pings go first, the
    /// close frame last, after everything queued before `close()`.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        while self.has_output() {
            match self.ws().poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(self.error_end(e, cx)),
                Poll::Ready(Ok(())) => {}
            }
            let msg = if self.ping_due {
                self.ping_due = false;
                self.ping_seq += 1;
                Message::Ping(Bytes::copy_from_slice(&self.ping_seq.to_be_bytes()))
            } else if let Some(msg) = self.out.pop_front() {
                if self.close_rcvd.is_some() {
                    continue; // the peer closed: nothing more may be sent
                }
                msg
            } else if let Some(frame) = self.pending_close.take() {
                self.close_sent = true;
                self.close_deadline = Some(Instant::now() + self.timing.close_timeout);
                if self.close_rcvd.is_some() {
                    continue; // tungstenite already answered the peer's close
                }
                Message::Close(Some(frame))
            } else {
                break;
            };
            if let Err(e) = self.ws().start_send(msg) {
                return Err(self.error_end(e, cx));
            }
            self.needs_flush = true;
        }
        if self.needs_flush {
            match self.ws().poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(self.error_end(e, cx)),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    fn accept(&mut self, msg: Message) {
        match msg {
            Message::Text(text) => {
                if self.route_caller(text.as_bytes()) {
                    return;
                }
                let weight = text.len();
                // With a sink attached it has already scanned the frame: what it
                // did not take is not a decodable delta, so no second scan.
                let parsed = if let Some(sink) = &self.sink {
                    match sink.route(text.as_bytes()) {
                        Route::Taken => return,
                        Route::First(parts) => Some(parts),
                        Route::NotAudio => None,
                    }
                } else if self.decode_audio {
                    audio::parse(text.as_bytes())
                } else {
                    None
                };
                self.batch.push(match parsed {
                    Some(parts) => Incoming::Audio(parts, weight),
                    None => Incoming::Text(text),
                });
            }
            Message::Binary(data) => {
                if !self.caller.as_mut().is_some_and(|c| c.route_binary(&data)) {
                    self.batch.push(Incoming::Binary(data));
                }
            }
            Message::Pong(_) => self.awaiting_pong = None,
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (1005, String::new()),
                };
                self.close_rcvd = Some((code, reason));
                if self.close_deadline.is_none() {
                    self.close_deadline = Some(Instant::now() + self.timing.close_timeout);
                }
            }
            Message::Ping(_) | Message::Frame(_) => {}
        }
    }

    /// Read up to the inbox bounds, deliver the batch with one lock.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        let (mut room_msgs, mut room_bytes, paused) = self.shared.inbox_room();
        // While closing, keep reading to see the peer's close frame; data that
        // does not fit any more is dropped since the caller asked to close.
        let closing = self.close_sent;
        if paused && !closing {
            return Ok(());
        }
        let mut result = Ok(());
        let mut out_of_room = false;
        for n in 0.. {
            if n == READ_BUDGET {
                cx.waker().wake_by_ref();
                break;
            }
            if (room_msgs == 0 || room_bytes == 0) && !closing {
                out_of_room = true;
                break;
            }
            match self.ws().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => {
                    result = Err(self.normal_end());
                    break;
                }
                Poll::Ready(Some(Err(e))) => {
                    result = Err(self.error_end(e, cx));
                    break;
                }
                Poll::Ready(Some(Ok(msg))) => {
                    let before = self.batch.len();
                    self.accept(msg);
                    if self.batch.len() > before {
                        if closing && (room_msgs == 0 || room_bytes == 0) {
                            self.batch.pop();
                            continue;
                        }
                        let weight = self.batch.last().map_or(0, Incoming::weight);
                        room_msgs = room_msgs.saturating_sub(1);
                        room_bytes = room_bytes.saturating_sub(weight.max(1));
                    }
                }
            }
        }
        if !self.batch.is_empty() || out_of_room {
            // Our room estimate is a snapshot: Python may have drained the
            // inbox meanwhile. `deliver` re-checks under the lock and only
            // pauses (to be resumed by Python) if it is really full;
            // otherwise keep reading on the next poll.
            let room = self.shared.deliver(&mut self.batch);
            if out_of_room && room {
                cx.waker().wake_by_ref();
            }
        }
        if self.close_rcvd.is_some() && !self.close_marked {
            // The closing handshake is complete once the peer's frame arrives
            // (after the messages before it are queued); the TCP teardown that
            // follows is not the caller's business.
            self.close_marked = true;
            self.shared.mark_ended(self.normal_end());
        }
        result
    }

    /// Keepalive and close deadlines, with one timer for both.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        let now = Instant::now();
        if let Some(deadline) = self.close_deadline {
            if now >= deadline {
                return Err(match self.close_rcvd {
                    Some(_) => self.normal_end(),
                    None => Self::lost("close handshake timed out"),
                });
            }
        }
        if let Some(since) = self.awaiting_pong {
            if now >= since + self.timing.ping_timeout {
                if self.shared.inbox_room().2 {
                    // We stopped reading (inbox full), so a pong may be sitting
                    // unread: liveness is unknown, not disproved.
                    self.awaiting_pong = Some(now);
                } else {
                    return Err(Self::lost("keepalive ping timeout"));
                }
            }
        } else if let (Some(at), Some(interval)) = (self.next_ping, self.timing.ping_interval) {
            if now >= at && self.close_deadline.is_none() {
                self.ping_due = true;
                self.awaiting_pong = Some(now);
                self.next_ping = Some(now + interval);
                cx.waker().wake_by_ref();
            }
        }
        // While closing only the close deadline counts (no pings are sent then).
        let next = match (self.close_deadline, self.awaiting_pong) {
            (Some(deadline), _) => Some(deadline),
            (None, Some(since)) => Some(since + self.timing.ping_timeout),
            (None, None) => self.next_ping,
        };
        if let Some(at) = next {
            if self.timer_at != Some(at) {
                self.timer.as_mut().reset(at);
                self.timer_at = Some(at);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                self.timer_at = None;
                cx.waker().wake_by_ref();
            }
        }
        Ok(())
    }

    fn poll_once(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        if self.pending_close.is_none() && !self.close_sent {
            self.pending_close = self.shared.take_close_request();
        }
        if self.pending_close.is_none() && !self.close_sent {
            if let Some(pump) = self.pump.as_mut() {
                pump.poll(cx, &self.shared);
            }
            if let Some(caller) = self.caller.as_mut() {
                caller.poll(cx, &self.shared);
            }
        }
        self.poll_write(cx)?;
        self.poll_read(cx)?;
        self.poll_timer(cx)?;
        // Reading may have queued a pong or close reply inside tungstenite.
        if self.needs_flush || self.shared.has_outgoing() {
            self.poll_write(cx)?;
        }
        Ok(())
    }
}

/// The driver behind a mutex: the tokio task polls it, and a Python thread that
/// just queued a message may write it out directly (see [`write_now`]).
pub type DriverCell = Mutex<Driver>;

fn lock(cell: &DriverCell) -> std::sync::MutexGuard<'_, Driver> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tokio task: owns the only strong reference to the driver, so the socket
/// closes as soon as the task ends, whatever Python still holds.
pub struct DriverTask(pub Arc<DriverCell>);

impl Future for DriverTask {
    type Output = End;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<End> {
        let mut this = lock(&self.0);
        this.shared.driver.register(cx.waker());
        match &this.task_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => this.task_waker = Some(cx.waker().clone()),
        }
        if let Some(end) = this.failed.take() {
            return Poll::Ready(end);
        }
        match this.poll_once(cx) {
            Ok(()) => Poll::Pending,
            Err(end) => Poll::Ready(end),
        }
    }
}

/// Run `f` on the driver if the connection's task still exists.
pub fn with_driver<R>(cell: &Weak<DriverCell>, f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    let cell = cell.upgrade()?;
    let mut driver = lock(&cell);
    Some(f(&mut driver))
}

/// Write queued messages from the calling (Python) thread, skipping the wake-up
/// of the tokio thread, which dominates the cost of an isolated send. Returns
/// `false` when the task must be woken instead: it is busy right now, has not
/// run yet, or the connection is gone. If the socket is full, what is left
/// stays queued and the task (whose waker is registered) finishes the job.
pub fn write_now(cell: &Weak<DriverCell>) -> bool {
    // `FASTVOICE_TRANSPORT_DIRECT_WRITE=0` turns this off (for measuring it).
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ENABLED
        .get_or_init(|| std::env::var("FASTVOICE_TRANSPORT_DIRECT_WRITE").as_deref() != Ok("0"))
    {
        return false;
    }
    let Some(cell) = cell.upgrade() else {
        return false;
    };
    let Ok(mut driver) = cell.try_lock() else {
        return false;
    };
    let Some(waker) = driver.task_waker.clone() else {
        return false;
    };
    if driver.failed.is_some() {
        return false;
    }
    let mut cx = Context::from_waker(&waker);
    if let Err(end) = driver.poll_write(&mut cx) {
        driver.failed = Some(end);
        waker.wake();
    }
    true
}
