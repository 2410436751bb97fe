//! The error type of the crate.

use std::path::PathBuf;

/// Why the test PKI could not be generated, issued from or written.
///
/// The message names what failed; the underlying rcgen or I/O error is the
/// [`source`](std::error::Error::source) (print the chain, e.g. with `{:#}` in anyhow).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen failed to generate a key, or to build or sign a certificate or CRL.
    #[error("cannot generate {what}")]
    Rcgen {
        /// What was being generated ("key of client operator", "CRL", ...).
        what: String,
        /// The error rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// A validity date falls outside what X.509 and `time` can represent.
    #[error("{what} is out of the representable date range")]
    TimeOutOfRange {
        /// Which date ("now", "now + 3650 days", ...).
        what: String,
    },
    /// The output directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (or its permissions set).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl PkiError {
    /// Wraps an rcgen error with what was being generated.
    pub(crate) fn rcgen(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
        let what = what.into();
        move |source| PkiError::Rcgen { what, source }
    }
}
