//! Native WebSocket transport (tokio-tungstenite + rustls) bridged to asyncio.
//!
//! Layout, in the order a message travels:
//! - [`connect`] / [`tls`]: URL checks, TCP, proxy, rustls, the upgrade;
//! - [`driver`]: the per-connection tokio task owning the socket;
//! - [`bridge`]: the bounded queues between that task and Python, and the
//!   per-loop wake-up channel;
//! - [`connection`]: the `#[pyclass]` objects the Python side
//!   (`fastvoice/transport/`) drives;
//! - [`runtime`]: the single lazily started tokio runtime;
//! - [`settings`]: checked timing, queue and frame limits;
//! - [`errors`]: raising the Python exception classes;
//! - [`secrets`]: masking credentials in anything a peer echoes back;
//! - [`audio`]: the adapter to [`crate::wire`] for `send_audio`/`decode_audio`;
//! - [`media`]: native audio I/O, ring buffers to and from the wire;
//! - [`accept`] / [`caller`]: the server side, a socket handed over by a
//!   Python web server, and a phone caller's media stream on it.

use pyo3::prelude::*;

pub mod accept;
pub mod audio;
pub mod bridge;
pub mod caller;
pub mod clock;
pub mod connect;
pub mod connection;
pub mod driver;
pub mod errors;
pub mod media;
pub mod runtime;
pub mod secrets;
pub mod settings;
pub mod tls;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connection::LoopWaker>()?;
    m.add_class::<connection::PendingConnect>()?;
    m.add_class::<connection::NativeConnection>()?;
    m.add_function(wrap_pyfunction!(connection::transport_connect, m)?)?;
    m.add_class::<accept::CallerStream>()?;
    m.add_function(wrap_pyfunction!(accept::transport_accept, m)?)?;
    m.add_function(wrap_pyfunction!(accept::caller_attach, m)?)?;
    m.add_function(wrap_pyfunction!(connection::transport_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(connection::transport_runtime_running, m)?)?;
    m.add_function(wrap_pyfunction!(secrets::scrub_secrets, m)?)?;
    Ok(())
}
