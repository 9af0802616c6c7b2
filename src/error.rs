//! Typed errors of the library. Every variant says what went wrong with which
//! file. The variant says where the run stands: [`Error::Input`],
//! [`Error::Refused`] and [`Error::Io`] are raised before anything is touched;
//! once execute has begun destroying, every error is wrapped in
//! [`Error::AfterDestruction`], so nobody is told "nothing was touched" when
//! something was. The CLI maps variants to exit codes ([`crate::exit_code`]).

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
    /// An error after execute began destroying (a pass partly written, a
    /// file renamed, a journal write that failed): the disposal is
    /// incomplete and the journal lets `--resume` continue.
    #[error("{source}; the disposal is incomplete: fix the cause and run again with --resume")]
    AfterDestruction {
        #[source]
        source: Box<Error>,
    },
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

    /// Mark an error as raised after destruction began (idempotent; an
    /// interrupt stays an interrupt).
    pub fn after_destruction(self) -> Self {
        match self {
            Error::Interrupted | Error::AfterDestruction { .. } => self,
            e => Error::AfterDestruction {
                source: Box::new(e),
            },
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
