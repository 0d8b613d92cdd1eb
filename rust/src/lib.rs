//! fastvoice's native core, exposed to Python as `fastvoice._fastvoice`.
//!
//! Each capability lives in its own small module with a `register` function; the
//! pure-Rust kernels in those modules do not touch Python so that `cargo test` and
//! `cargo bench` exercise them directly.

use pyo3::prelude::*;

pub mod buffer;
pub mod errors;
pub mod g711;
pub mod pcm;
pub mod resample;
pub mod ring;
mod sync;
pub mod transport;
pub mod vad;
pub mod wav;
pub mod wire;

#[pymodule]
fn _fastvoice(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    pcm::register(m)?;
    wav::register(m)?;
    g711::register(m)?;
    resample::register(m)?;
    ring::register(m)?;
    wire::register(m)?;
    transport::register(m)?;
    vad::register(m)?;
    Ok(())
}
