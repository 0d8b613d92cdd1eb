//! Native WebSocket transport (tokio-tungstenite + rustls) bridged to asyncio.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
