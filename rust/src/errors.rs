//! Exception types raised by the native core.
//!
//! `AudioFormatError` subclasses `ValueError` so that callers who already catch
//! `ValueError` keep working; the message always names the problem.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    fastvoice,
    AudioFormatError,
    PyValueError,
    "Audio data or parameters that fastvoice cannot interpret."
);

/// Shorthand for building an `AudioFormatError`.
pub fn audio_err(msg: impl Into<String>) -> PyErr {
    AudioFormatError::new_err(msg.into())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("AudioFormatError", m.py().get_type::<AudioFormatError>())?;
    Ok(())
}
