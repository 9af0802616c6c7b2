//! How the library reports progress without printing: the CLI implements
//! [`Progress`] with indicatif bars (on a terminal) or plain log lines.
//! Implementations must be cheap; they are called from worker threads.

use std::fmt;

/// A phase of work, with what it works on. The CLI decides how to show each
/// kind; it never matches on words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase<'a> {
    /// Walking a local location.
    Walk(&'a str),
    /// Hashing the files selected in a local location.
    Hash(&'a str),
    /// Listing an S3 location's versions, markers and uploads.
    List(&'a str),
    /// Reading each S3 version's details (HEAD, checksum).
    Inspect(&'a str),
    /// Destroying the local artifacts of a plan.
    Dispose,
    /// Purging an S3 location.
    Purge(&'a str),
}

impl Phase<'_> {
    /// The phase's verb, as a bar's prefix.
    pub fn verb(&self) -> &'static str {
        match self {
            Phase::Walk(_) => "walk",
            Phase::Hash(_) => "hash",
            Phase::List(_) => "list",
            Phase::Inspect(_) => "inspect",
            Phase::Dispose => "dispose",
            Phase::Purge(_) => "purge",
        }
    }
}

impl fmt::Display for Phase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Walk(s)
            | Phase::Hash(s)
            | Phase::List(s)
            | Phase::Inspect(s)
            | Phase::Purge(s) => {
                write!(f, "{} {s}", self.verb())
            }
            Phase::Dispose => f.write_str(self.verb()),
        }
    }
}

/// A sink for progress and log events.
pub trait Progress: Send + Sync {
    /// A new phase starts, with its total item and byte counts (0 if unknown).
    fn start(&self, _phase: Phase<'_>, _items: u64, _bytes: u64) {}
    /// Bytes processed within the current phase.
    fn bytes(&self, _n: u64) {}
    /// One item of the current phase is done; `line` says what happened.
    fn item(&self, _line: &str) {}
    /// A warning people should see (residual risk, skipped artifact, retry).
    fn warn(&self, _line: &str) {}
    /// The current phase is over.
    fn finish(&self) {}
}

/// Reports nothing (library callers and tests).
pub struct Silent;

impl Progress for Silent {}
