//! How the library reports progress without printing: the CLI implements
//! [`Progress`] with indicatif bars (on a terminal) or plain log lines.
//! Implementations must be cheap; they are called from worker threads.

/// A sink for progress and log events.
pub trait Progress: Send + Sync {
    /// A new phase starts, with its total item and byte counts (0 if unknown).
    fn start(&self, _phase: &str, _items: u64, _bytes: u64) {}
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
