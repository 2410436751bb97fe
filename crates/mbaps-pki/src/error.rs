//! The error type of the crate.

use std::path::PathBuf;

/// Why a CA could not be created, opened, issue, revoke, or a certificate be
/// read. Every message names the file or field, the value and the limit;
/// the underlying rcgen, parser or I/O error is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A command-line or API value is out of range or malformed.
    #[error("{field} {value:?}: {reason}")]
    Invalid {
        /// The field ("--name", "--days", "--role", ...).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it, with the limit.
        reason: String,
    },
    /// A file exists and `--force` was not given.
    #[error("{} exists; give --force to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file or folder could not be read, written, created or locked.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done ("read", "write", "create", "lock", ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or CRL file could not be read (as the servers read them).
    #[error(transparent)]
    Load(#[from] mbaps_session::LoadError),
    /// A file is larger than anything it can hold legitimately.
    #[error("{} is {size} bytes; at most {limit} are read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file does not hold what it should (no certificate, a broken key,
    /// a CSR whose signature does not verify, a records file with a mistake).
    #[error("{}: {reason}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// rcgen failed to generate a key or to build or sign a certificate or CRL.
    #[error("cannot generate {what}")]
    Rcgen {
        /// What was being generated.
        what: String,
        /// The error rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// A date falls outside what X.509 and `time` can represent.
    #[error("{what} is out of the representable date range")]
    TimeOutOfRange {
        /// Which date.
        what: String,
    },
}

impl PkiError {
    /// Wraps an rcgen error with what was being generated.
    pub(crate) fn rcgen(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
        let what = what.into();
        move |source| PkiError::Rcgen { what, source }
    }

    /// An [`PkiError::Invalid`] value.
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> PkiError {
        PkiError::Invalid {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// A [`PkiError::Content`] error about `path`.
    pub(crate) fn content(path: &std::path::Path, reason: impl Into<String>) -> PkiError {
        PkiError::Content {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the action and path.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.to_path_buf();
        move |source| PkiError::Io {
            action,
            path,
            source,
        }
    }
}
