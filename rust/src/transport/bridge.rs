//! The hand-over between a connection's tokio task and its asyncio loop.
//!
//! Each connection owns two bounded queues behind one short-held mutex: the
//! inbox (filled by the driver task, drained by Python) and the outbox (filled
//! by Python, drained by the driver). Neither side ever waits on the other
//! while holding the lock, and the tokio side never takes the GIL: messages
//! cross as plain Rust values and become Python objects on the Python thread,
//! a whole batch at a time.
//!
//! Waking is edge-triggered both ways. Python wakes the driver (an
//! `AtomicWaker`) only when the outbox goes from empty to non-empty or when a
//! paused reader may resume. The driver wakes Python only when a Python waiter
//! has *armed* the connection (it found nothing to do and is about to await),
//! through the per-loop [`LoopSignal`]; a burst of messages therefore costs one
//! wake-up, and messages that are already queued are returned with no thread
//! round trip at all.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::task::AtomicWaker;
use pyo3::prelude::*;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::audio::AudioParts;

/// A message waiting in the inbox, still in Rust form.
pub enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// An audio-delta frame already decoded by [`crate::wire`], with its frame size.
    Audio(AudioParts, usize),
}

impl Incoming {
    pub fn weight(&self) -> usize {
        match self {
            Incoming::Text(t) => t.len(),
            Incoming::Binary(b) => b.len(),
            Incoming::Audio(_, weight) => *weight,
        }
    }
}

/// Queue bounds, in messages and in payload bytes, for each direction.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_queue: usize,
    pub max_queue_bytes: usize,
    pub max_message_size: usize,
}

/// Why a connection ended. The code is what the peer sent in its close frame,
/// or what we failed the connection with (1006 for a lost transport).
#[derive(Clone, Debug)]
pub struct End {
    pub code: u16,
    pub reason: String,
    pub kind: EndKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndKind {
    /// A close handshake (either side started it) or a lost connection.
    Closed,
    /// The peer broke the protocol (bad UTF-8, bad framing): raised once as `ProtocolError`.
    Protocol(String),
    /// The peer sent a message over `max_message_size`: raised once as `MessageTooBig`.
    TooBig(String),
}

/// Bits of [`State::want`]: what an armed Python waiter is waiting for.
pub const WANT_RECV: u8 = 1;
pub const WANT_SEND: u8 = 2;
pub const WANT_END: u8 = 4;

#[derive(Default)]
pub struct State {
    pub inbox: VecDeque<Incoming>,
    pub inbox_bytes: usize,
    pub outbox: VecDeque<Message>,
    pub outbox_bytes: usize,
    /// Armed waiter bits; cleared when the loop is signalled.
    pub want: u8,
    /// The driver stopped reading the socket because the inbox was full.
    pub read_paused: bool,
    pub close_request: Option<CloseFrame>,
    /// `close()` was called: no more sends are accepted (stays set after the
    /// driver takes `close_request`).
    pub closing: bool,
    pub end: Option<End>,
    /// The `Protocol`/`TooBig` error was raised once; later calls see `ConnectionClosedError`.
    pub end_error_taken: bool,
}

/// State shared by one connection's driver task and its Python object.
pub struct Shared {
    pub id: u64,
    pub limits: Limits,
    state: Mutex<State>,
    pub driver: AtomicWaker,
    signal: Arc<LoopSignal>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids shared by connections and pending connects: the key Python uses to find
/// the futures to resolve when a loop is signalled.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Result of offering a message to the outbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    Queued { first: bool },
    Full,
}

/// Result of one attempt to take messages from the inbox.
pub enum Taken {
    /// At least one message was moved into the caller's vector.
    Some,
    /// Nothing queued; the waiter is armed and will be signalled.
    Armed,
    /// Nothing queued and nothing ever will be.
    Ended(End, bool),
}

impl Shared {
    pub fn new(id: u64, limits: Limits, signal: Arc<LoopSignal>) -> Self {
        Shared {
            id,
            limits,
            state: Mutex::new(State::default()),
            driver: AtomicWaker::new(),
            signal,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Queue operations never leave the state half-updated across a panic point.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- Python side -------------------------------------------------------------

    /// Move up to `max_n` messages into `out`. When the inbox is empty, arm the
    /// waiter (under the same lock, so no message can slip between the check
    /// and the arming). Wakes a reader paused on a full inbox.
    pub fn take(&self, max_n: usize, out: &mut Vec<Incoming>) -> Taken {
        let mut st = self.lock();
        if st.inbox.is_empty() {
            return match st.end.clone() {
                Some(end) => {
                    let first = !st.end_error_taken;
                    st.end_error_taken = true;
                    Taken::Ended(end, first)
                }
                None => {
                    st.want |= WANT_RECV;
                    Taken::Armed
                }
            };
        }
        let n = max_n.min(st.inbox.len());
        let mut bytes = 0;
        for msg in st.inbox.drain(..n) {
            bytes += msg.weight();
            out.push(msg);
        }
        st.inbox_bytes -= bytes;
        let resume = st.read_paused && self.inbox_has_room(&st);
        if resume {
            st.read_paused = false;
        }
        drop(st);
        if resume {
            self.driver.wake();
        }
        Taken::Some
    }

    /// Remove the queued messages `take` accepts (text or binary, in order),
    /// keeping the rest in place: a caller stream attached now takes over the
    /// media frames already delivered, ahead of the ones it will read itself.
    pub fn take_where(&self, mut take: impl FnMut(&[u8], bool) -> bool) {
        let mut st = self.lock();
        let mut removed = 0;
        st.inbox.retain(|msg| {
            let taken = match msg {
                Incoming::Text(t) => take(t.as_bytes(), false),
                Incoming::Binary(b) => take(b, true),
                Incoming::Audio(..) => false,
            };
            if taken {
                removed += msg.weight();
            }
            !taken
        });
        st.inbox_bytes -= removed;
    }

    /// The inbox may take another message (the reader pauses at either bound;
    /// one message is always accepted so a large frame cannot wedge the queue).
    pub fn inbox_has_room(&self, st: &State) -> bool {
        st.inbox.len() < self.limits.max_queue && st.inbox_bytes < self.limits.max_queue_bytes
    }

    /// Queue `msg` for sending. `Ok(Offered::Queued { first })`: queued, and
    /// `first` says the outbox was empty (someone must get it written).
    /// `Ok(Offered::Full)`: a send waiter is armed. `Err`: closing or closed.
    pub fn offer(&self, msg: Message, weight: usize) -> Result<Offered, Option<End>> {
        let mut st = self.lock();
        if let Some(end) = &st.end {
            return Err(Some(end.clone()));
        }
        if st.closing {
            return Err(None);
        }
        let room = st.outbox.is_empty()
            || (st.outbox.len() < self.limits.max_queue
                && st.outbox_bytes + weight <= self.limits.max_queue_bytes);
        if !room {
            st.want |= WANT_SEND;
            return Ok(Offered::Full);
        }
        let first = st.outbox.is_empty();
        st.outbox.push_back(msg);
        st.outbox_bytes += weight;
        Ok(Offered::Queued { first })
    }

    /// Queue a frame the driver made itself (the input pump), behind what
    /// Python queued before it, so frames keep their order. Unless `force`
    /// it must fit the bounds; no waiter is armed. Gives the frame back if it
    /// was not queued.
    pub fn offer_own(&self, msg: Message, weight: usize, force: bool) -> Result<(), Message> {
        let mut st = self.lock();
        if st.end.is_some() || st.closing {
            return Err(msg);
        }
        let room = force
            || st.outbox.is_empty()
            || (st.outbox.len() < self.limits.max_queue
                && st.outbox_bytes + weight <= self.limits.max_queue_bytes);
        if !room {
            return Err(msg);
        }
        st.outbox.push_back(msg);
        st.outbox_bytes += weight;
        Ok(())
    }

    /// Ask the driver to start the closing handshake (idempotent).
    pub fn request_close(&self, code: u16, reason: &str) {
        let mut st = self.lock();
        if st.end.is_some() || st.closing {
            return;
        }
        st.closing = true;
        st.close_request = Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        });
        drop(st);
        self.driver.wake();
    }

    /// `Some(end)` once the connection has fully ended; otherwise arms an end waiter.
    pub fn end_or_arm(&self) -> Option<End> {
        let mut st = self.lock();
        if st.end.is_none() {
            st.want |= WANT_END;
        }
        st.end.clone()
    }

    pub fn end(&self) -> Option<End> {
        self.lock().end.clone()
    }

    // ---- driver side -------------------------------------------------------------

    /// Signal the loop if a waiter is armed for any of `bits`.
    pub fn notify(&self, bits: u8) {
        let mut st = self.lock();
        if st.want & bits == 0 {
            return;
        }
        st.want = 0;
        drop(st);
        self.signal.notify(self.id);
    }

    /// Append received messages; pauses the reader when the inbox is full.
    /// Returns whether the reader may go on.
    pub fn deliver(&self, batch: &mut Vec<Incoming>) -> bool {
        let mut st = self.lock();
        for msg in batch.drain(..) {
            st.inbox_bytes += msg.weight();
            st.inbox.push_back(msg);
        }
        let room = self.inbox_has_room(&st);
        st.read_paused = !room;
        let wake = st.want & WANT_RECV != 0 && !st.inbox.is_empty();
        if wake {
            st.want = 0;
        }
        drop(st);
        if wake {
            self.signal.notify(self.id);
        }
        room
    }

    /// Move up to `max` queued outgoing messages into `into`.
    pub fn take_outgoing(&self, into: &mut VecDeque<Message>, max: usize) {
        let mut st = self.lock();
        let n = max.min(st.outbox.len());
        let mut bytes = 0;
        for msg in st.outbox.drain(..n) {
            bytes += message_weight(&msg);
            into.push_back(msg);
        }
        st.outbox_bytes -= bytes;
        let wake = n > 0 && st.want & WANT_SEND != 0;
        if wake {
            st.want = 0;
        }
        drop(st);
        if wake {
            self.signal.notify(self.id);
        }
    }

    /// Free inbox space (messages, bytes) and whether the reader is paused.
    pub fn inbox_room(&self) -> (usize, usize, bool) {
        let st = self.lock();
        (
            self.limits.max_queue.saturating_sub(st.inbox.len()),
            self.limits.max_queue_bytes.saturating_sub(st.inbox_bytes),
            st.read_paused,
        )
    }

    pub fn has_outgoing(&self) -> bool {
        !self.lock().outbox.is_empty()
    }

    /// The closing handshake is done (the peer's close frame arrived): sends
    /// fail from now on, receives fail once the inbox is drained.
    pub fn mark_ended(&self, end: End) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        let wake = st.want != 0;
        st.want = 0;
        drop(st);
        if wake {
            self.signal.notify(self.id);
        }
    }

    pub fn take_close_request(&self) -> Option<CloseFrame> {
        self.lock().close_request.take()
    }

    /// Record the end of the connection and wake every waiter.
    pub fn finish(&self, end: End) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        st.outbox.clear();
        st.outbox_bytes = 0;
        st.want = 0;
        drop(st);
        self.signal.notify(self.id);
    }
}

/// The payload size a message counts for in the queue bounds.
pub fn message_weight(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) | Message::Frame(_) => 0,
    }
}

/// How a [`LoopSignal`] reaches its asyncio loop.
enum Wake {
    /// Make a file descriptor readable that the loop watches with
    /// `loop.add_reader`: no GIL needed on the tokio thread.
    Fd(WakeFd),
    /// Call a Python callable (`loop.call_soon_threadsafe(...)`) under the GIL;
    /// kept to measure the pyo3-async-runtimes-style alternative.
    Call(Py<PyAny>),
}

/// The readable-fd wake-up. On Linux an eventfd: signalling is one 8-byte
/// counter add and clearing one read, where a socketpair allocates, queues and
/// frees a socket buffer for every byte sent (measured in
/// docs/bench-notes/transport.md). `FASTVOICE_TRANSPORT_WAKE=socketpair`
/// selects the socketpair (the only choice elsewhere), for A/B runs.
enum WakeFd {
    #[cfg(target_os = "linux")]
    Event(std::fs::File),
    Pair {
        tx: UnixStream,
        rx: UnixStream,
    },
}

impl WakeFd {
    fn new() -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        if std::env::var("FASTVOICE_TRANSPORT_WAKE").as_deref() != Ok("socketpair") {
            return Ok(WakeFd::Event(eventfd()?));
        }
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(WakeFd::Pair { tx, rx })
    }

    fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        match self {
            #[cfg(target_os = "linux")]
            WakeFd::Event(f) => f.as_raw_fd(),
            WakeFd::Pair { rx, .. } => rx.as_raw_fd(),
        }
    }

    fn signal(&self) {
        // Errors mean a wake-up is already pending (full socket buffer, or an
        // eventfd counter at its maximum): nothing to do.
        let _ = match self {
            #[cfg(target_os = "linux")]
            WakeFd::Event(f) => (&*f).write(&1u64.to_ne_bytes()),
            WakeFd::Pair { tx, .. } => (&*tx).write(&[1]),
        };
    }

    fn clear(&self) {
        match self {
            #[cfg(target_os = "linux")]
            WakeFd::Event(f) => {
                // One read resets the counter; EAGAIN means it already was zero.
                let mut sink = [0u8; 8];
                while let Err(e) = (&*f).read(&mut sink) {
                    if e.kind() != ErrorKind::Interrupted {
                        break;
                    }
                }
            }
            WakeFd::Pair { rx, .. } => {
                let mut sink = [0u8; 256];
                loop {
                    match (&*rx).read(&mut sink) {
                        Ok(n) if n == sink.len() => continue,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        _ => break,
                    }
                }
            }
        }
    }
}

/// A non-blocking, close-on-exec eventfd.
#[cfg(target_os = "linux")]
fn eventfd() -> std::io::Result<std::fs::File> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: eventfd takes no pointers; a non-negative return is a fresh fd
    // that nothing else owns, so `OwnedFd` may take it over.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: see above; `fd` is valid and owned by nobody else.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// One per asyncio loop: collects the ids of connections with news and wakes
/// the loop once for all of them.
pub struct LoopSignal {
    ready: Mutex<Vec<u64>>,
    wake: Wake,
}

impl LoopSignal {
    pub fn with_fd() -> std::io::Result<Self> {
        Ok(LoopSignal {
            ready: Mutex::new(Vec::new()),
            wake: Wake::Fd(WakeFd::new()?),
        })
    }

    pub fn with_callback(cb: Py<PyAny>) -> Self {
        LoopSignal {
            ready: Mutex::new(Vec::new()),
            wake: Wake::Call(cb),
        }
    }

    fn ready(&self) -> MutexGuard<'_, Vec<u64>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file descriptor the loop should watch, if this signal uses one.
    pub fn fd(&self) -> Option<i32> {
        match &self.wake {
            Wake::Fd(fd) => Some(fd.fd()),
            Wake::Call(_) => None,
        }
    }

    /// Mark `id` ready and wake the loop if it is not already due to wake.
    pub fn notify(&self, id: u64) {
        let mut ready = self.ready();
        let first = ready.is_empty();
        ready.push(id);
        drop(ready);
        if !first {
            return;
        }
        match &self.wake {
            Wake::Fd(fd) => fd.signal(),
            Wake::Call(cb) => {
                // Never during interpreter teardown: the loop is gone by then.
                Python::try_attach(|py| {
                    if let Err(err) = cb.call0(py) {
                        err.write_unraisable(py, None);
                    }
                });
            }
        }
    }

    /// Called on the loop thread when woken: clear the wake-up, then hand over
    /// the ids (in this order, so an id added meanwhile re-arms the fd).
    pub fn drain(&self, out: &mut Vec<u64>) {
        if let Wake::Fd(fd) = &self.wake {
            fd.clear();
        }
        out.append(&mut self.ready());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_queue: usize, max_queue_bytes: usize) -> (Shared, Arc<LoopSignal>) {
        let signal = Arc::new(LoopSignal::with_fd().expect("socketpair"));
        let limits = Limits {
            max_queue,
            max_queue_bytes,
            max_message_size: 1 << 20,
        };
        (Shared::new(7, limits, signal.clone()), signal)
    }

    fn text(s: &str) -> Incoming {
        Incoming::Text(Utf8Bytes::from(s))
    }

    #[test]
    fn armed_receiver_is_signalled_once_per_burst() {
        let (sh, signal) = shared(100, 1 << 20);
        let mut out = Vec::new();
        assert!(matches!(sh.take(10, &mut out), Taken::Armed));
        for i in 0..3 {
            let mut batch = vec![text(&format!("m{i}"))];
            assert!(sh.deliver(&mut batch));
        }
        let mut ids = Vec::new();
        signal.drain(&mut ids);
        assert_eq!(ids, vec![7], "one wake-up for three deliveries");
        assert!(matches!(sh.take(10, &mut out), Taken::Some));
        assert_eq!(out.len(), 3);
        // Nothing armed now: deliveries do not signal.
        assert!(sh.deliver(&mut vec![text("x")]));
        ids.clear();
        signal.drain(&mut ids);
        assert!(ids.is_empty());
    }

    #[test]
    fn full_inbox_pauses_reader_until_drained() {
        let (sh, _signal) = shared(2, 1 << 20);
        assert!(sh.deliver(&mut vec![text("a")]));
        assert!(!sh.deliver(&mut vec![text("b")]));
        assert!(sh.inbox_room().2, "reader paused");
        let mut out = Vec::new();
        assert!(matches!(sh.take(1, &mut out), Taken::Some));
        assert!(
            !sh.inbox_room().2,
            "a take below the bound resumes the reader"
        );
    }

    #[test]
    fn byte_bound_and_one_message_always_fits() {
        let (sh, _signal) = shared(100, 10);
        assert!(!sh.deliver(&mut vec![text("a message longer than ten bytes")]));
        assert_eq!(sh.lock().inbox.len(), 1);
    }

    #[test]
    fn outbox_bounds_and_end_reporting() {
        let (sh, _signal) = shared(2, 1 << 20);
        let msg = || Message::Text(Utf8Bytes::from("hi"));
        assert_eq!(
            sh.offer(msg(), 2).ok(),
            Some(Offered::Queued { first: true })
        );
        assert_eq!(
            sh.offer(msg(), 2).ok(),
            Some(Offered::Queued { first: false })
        );
        assert_eq!(
            sh.offer(msg(), 2).ok(),
            Some(Offered::Full),
            "full: caller must wait"
        );
        let mut out = VecDeque::new();
        sh.take_outgoing(&mut out, 10);
        assert_eq!(out.len(), 2);
        sh.finish(End {
            code: 1007,
            reason: "bad".into(),
            kind: EndKind::Protocol("bad utf-8".into()),
        });
        assert!(sh.offer(msg(), 2).is_err());
        let mut got = Vec::new();
        assert!(matches!(sh.take(1, &mut got), Taken::Ended(_, true)));
        assert!(matches!(sh.take(1, &mut got), Taken::Ended(_, false)));
    }

    #[test]
    fn no_sends_after_close_even_once_the_driver_took_the_request() {
        let (sh, _signal) = shared(8, 1 << 20);
        sh.request_close(1000, "");
        assert!(sh.take_close_request().is_some());
        assert!(sh.offer(Message::Text(Utf8Bytes::from("late")), 4).is_err());
    }
}
