//! The process-wide tokio runtime that drives every connection.
//!
//! One runtime serves all connections of all asyncio loops: sockets, TLS and
//! framing run on its worker thread while Python threads only touch the bounded
//! queues in [`super::bridge`]. It is created on first use (importing fastvoice
//! costs nothing) and torn down by [`shutdown`], which Python registers with
//! `atexit` so worker threads never outlive the interpreter they would report to.
//! A later connect after shutdown simply builds a fresh runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};

use super::bridge::Shared;
use crate::sync::lock;

/// One worker: on a 2-core machine the asyncio thread owns the other core, and a
/// single worker keeps every connection's wake-ups on one warm thread.
const WORKER_THREADS: usize = 1;

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Live connections, so shutdown can close them politely (1001) before the
/// runtime drops their tasks.
static LIVE: Mutex<Option<HashMap<u64, Weak<Shared>>>> = Mutex::new(None);

/// A handle to the shared runtime, creating it if needed.
pub fn handle() -> std::io::Result<Handle> {
    let mut rt = lock(&RUNTIME);
    if let Some(rt) = rt.as_ref() {
        return Ok(rt.handle().clone());
    }
    let built = Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("fastvoice-transport")
        .enable_io()
        .enable_time()
        .build()?;
    let handle = built.handle().clone();
    *rt = Some(built);
    Ok(handle)
}

pub fn register_live(shared: &Arc<Shared>) {
    lock(&LIVE)
        .get_or_insert_with(HashMap::new)
        .insert(shared.id, Arc::downgrade(shared));
}

pub fn unregister_live(id: u64) {
    if let Some(map) = lock(&LIVE).as_mut() {
        map.remove(&id);
    }
}

fn live_count() -> usize {
    lock(&LIVE).as_ref().map_or(0, HashMap::len)
}

/// Close every live connection with 1001 (going away), give the close
/// handshakes up to `grace` to finish, then stop the runtime. Blocking: call
/// with the GIL released.
pub fn shutdown(grace: Duration) {
    let live: Vec<Arc<Shared>> = lock(&LIVE)
        .as_ref()
        .map(|m| m.values().filter_map(Weak::upgrade).collect())
        .unwrap_or_default();
    for shared in &live {
        shared.request_close(1001, "going away");
    }
    drop(live);
    let deadline = Instant::now() + grace;
    while live_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let rt = lock(&RUNTIME).take();
    if let Some(rt) = rt {
        rt.shutdown_timeout(Duration::from_millis(200));
    }
}

/// Whether the runtime currently exists (for tests of the lifecycle).
pub fn is_running() -> bool {
    lock(&RUNTIME).is_some()
}
