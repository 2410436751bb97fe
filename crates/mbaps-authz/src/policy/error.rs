//! Errors of loading a policy.

use core::fmt;
use std::path::PathBuf;

/// One mistake in a policy, with its position in the file (1-based; 0 when
/// the policy was not read from text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Line of the mistake.
    pub line: usize,
    /// Column of the mistake, in characters.
    pub column: usize,
    /// What is wrong, in words for the engineer who wrote the file.
    pub message: String,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read the policy file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The policy has mistakes: every one of them is listed.
    #[error("{}", Listing { origin, problems })]
    Invalid {
        /// Where the policy came from (a file path, or `<policy>`).
        origin: String,
        /// Every mistake found, in file order.
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    /// The mistakes, if the policy was read but is wrong.
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid { problems, .. } => problems,
            PolicyError::Io { .. } => &[],
        }
    }
}

/// The mistakes of a file, one per line, each as `ORIGIN:LINE:COLUMN:
/// MESSAGE` (`ORIGIN: MESSAGE` when the mistake has no position): how the
/// policy file and the gateway's configuration file report theirs.
pub struct Listing<'a> {
    /// The file's path (or a name for text that came from elsewhere).
    pub origin: &'a str,
    /// The mistakes, in file order.
    pub problems: &'a [Problem],
}

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if problem.line == 0 {
                write!(f, "{}: {}", self.origin, problem.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: {}",
                    self.origin, problem.line, problem.column, problem.message
                )?;
            }
        }
        Ok(())
    }
}
