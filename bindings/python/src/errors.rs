//! mbaps's errors as the Python exceptions of `mbaps._errors` (defined in
//! Python, so that they can also derive from the builtin
//! `ConnectionError`, `TimeoutError` and `ValueError`).

use mbaps_session::{ClientError, SessionError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Makes the exception `class` of `mbaps._errors` with `args`.
pub(crate) fn exception<'py, A>(py: Python<'py>, class: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made = py
        .import("mbaps._errors")
        .and_then(|errors| errors.getattr(class))
        .and_then(|class| class.call1(args));
    match made {
        Ok(error) => PyErr::from_value(error),
        Err(error) => error,
    }
}

/// A failed call, as Python sees it: the exception for its kind, with the
/// error's words and, where there is one, what they most likely mean.
pub(crate) fn raise(py: Python<'_>, error: ClientError, server_name: &str) -> PyErr {
    let words = match error.hint(server_name) {
        Some(hint) => format!("{error}: {hint}"),
        None => error.to_string(),
    };
    match &error {
        ClientError::Exception(code) => exception(py, "ModbusError", (*code as u8, words)),
        ClientError::Timeout | ClientError::Session(SessionError::HandshakeTimeout(_)) => {
            exception(py, "TimeoutError", (words,))
        }
        ClientError::Session(SessionError::Tls(_) | SessionError::NoLongerAccepted(_)) => {
            exception(py, "TlsError", (words,))
        }
        // What the codec refused to encode: an argument out of range.
        ClientError::Session(SessionError::InvalidRequest(_)) => PyValueError::new_err(words),
        ClientError::Io(_) | ClientError::Closed(_) | ClientError::Session(_) => {
            exception(py, "ConnectionError", (words,))
        }
        _ => exception(py, "Error", (words,)),
    }
}
