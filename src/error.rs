//! Typed errors of the library. Every variant says what went wrong with which
//! file, and [`Error::exit_code`] decides how the CLI exits. Input errors are
//! raised before anything is touched, so they map to exit code 2.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: manifest, profile, plan, certificate, key, signers file, URI.
    #[error("{0}")]
    Input(String),
    /// A refusal on safety grounds before anything was touched (bad approval,
    /// two-person rule, journal held by another run, …).
    #[error("{0}")]
    Refused(String),
    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A signature or certificate did not verify.
    #[error("{0}")]
    Verification(String),
    /// The user interrupted the run (Ctrl-C); the journal is consistent.
    #[error("interrupted; run again with --resume to continue")]
    Interrupted,
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub fn refused(msg: impl Into<String>) -> Self {
        Error::Refused(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error stands for (see README "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::Refused(_) => crate::cli::exit::USAGE,
            Error::Io { .. } => crate::cli::exit::USAGE,
            Error::Verification(_) => crate::cli::exit::INCOMPLETE,
            Error::Interrupted => crate::cli::exit::INTERRUPTED,
        }
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e.into()))
    }
}
