//! Raising the `fastvoice.transport` exception classes from Rust.
//!
//! The classes are defined in Python (`fastvoice/transport/_errors.py`) so they
//! can carry typed attributes (`code`, `reason`, `status`, `body`) and readable
//! messages; Rust imports them once and instantiates them. No message built
//! here contains header values or the URL query, and text from the peer
//! (close reasons, a refused upgrade's body) is scrubbed of credentials.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};

use super::bridge::{End, EndKind};
use super::connect::ConnectFailure;
use super::secrets::scrub;

const MODULE: &str = "fastvoice.transport._errors";

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, MODULE, name)
}

macro_rules! error_class {
    ($fn_name:ident, $name:literal) => {
        fn $fn_name(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
            static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
            class(py, &CELL, $name)
        }
    };
}

error_class!(connect_error_class, "ConnectError");
error_class!(closed_ok_class, "ConnectionClosedOK");
error_class!(closed_error_class, "ConnectionClosedError");
error_class!(protocol_error_class, "ProtocolError");
error_class!(too_big_class, "MessageTooBig");

fn instantiate<'py, A: pyo3::call::PyCallArgs<'py>>(
    cls: PyResult<&Bound<'py, PyType>>,
    args: A,
) -> PyErr {
    match cls.and_then(|c| c.call1(args)) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

pub fn connect_error(py: Python<'_>, f: ConnectFailure) -> PyErr {
    let body = f.body.map(|b| PyBytes::new(py, &b).unbind());
    instantiate(connect_error_class(py), (f.message, f.status, body))
}

/// 1000 (normal), 1001 (going away) and 1005 (a close frame without a code)
/// are clean closes; everything else, including 1006 (lost), is an error.
pub fn closed_error(py: Python<'_>, code: u16, reason: &str) -> PyErr {
    let cls = if matches!(code, 1000 | 1001 | 1005) {
        closed_ok_class(py)
    } else {
        closed_error_class(py)
    };
    instantiate(cls, (code, scrub(reason, &[])))
}

/// The error for an ended connection. The cause (`ProtocolError`,
/// `MessageTooBig`) is raised once; later calls see `ConnectionClosedError`.
pub fn end_error(py: Python<'_>, end: &End, first: bool) -> PyErr {
    match (&end.kind, first) {
        (EndKind::Protocol(msg), true) => instantiate(
            protocol_error_class(py),
            (scrub(msg, &[]), end.code, scrub(&end.reason, &[])),
        ),
        (EndKind::TooBig(msg), true) => instantiate(
            too_big_class(py),
            (scrub(msg, &[]), end.code, scrub(&end.reason, &[])),
        ),
        _ => closed_error(py, end.code, &end.reason),
    }
}

/// An outgoing message over `max_message_size`; the connection stays open.
pub fn too_big(py: Python<'_>, size: usize, limit: usize) -> PyErr {
    instantiate(
        too_big_class(py),
        (
            format!("message of {size} bytes is over max_message_size={limit}"),
            None::<u16>,
            None::<String>,
        ),
    )
}
