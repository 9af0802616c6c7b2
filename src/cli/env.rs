//! The environment variables decom itself defines, read in one place (as
//! uv's `env_vars.rs`); the library receives what they say as values. The
//! library reads the environment only where a standard chain demands it:
//! the AWS credential, region and endpoint chain (`s3`, including
//! `AWS_ENDPOINT_URL`) and `SSH_AUTH_SOCK` for ssh-agent (`sign::key`).

use crate::error::{Error, Result};
use crate::journal::Faults;

/// Passphrase of an encrypted key, for automation (on a terminal decom asks).
pub const KEY_PASSPHRASE: &str = "DECOM_KEY_PASSPHRASE";
/// Test hook: abort (like `kill -9`) right after the journal holds N records.
pub const TEST_ABORT_AFTER_RECORDS: &str = "DECOM_TEST_ABORT_AFTER_RECORDS";
/// Test hook: every journal write fails (ENOSPC) once the journal holds N records.
pub const TEST_FAIL_AFTER_RECORDS: &str = "DECOM_TEST_FAIL_AFTER_RECORDS";

/// Test hook: stop (SIGSTOP) right after the journal holds N records, until SIGCONT.
pub const TEST_STOP_AFTER_RECORDS: &str = "DECOM_TEST_STOP_AFTER_RECORDS";

pub fn key_passphrase() -> Option<String> {
    std::env::var(KEY_PASSPHRASE).ok()
}

/// The journal fault hooks, for the crash and failure tests.
pub fn faults() -> Result<Faults> {
    let abort = number(TEST_ABORT_AFTER_RECORDS)?;
    let stop = number(TEST_STOP_AFTER_RECORDS)?;
    let at: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>> = (abort.is_some() || stop.is_some())
        .then(|| {
            std::sync::Arc::new(move |n: u64| {
                if Some(n) == abort {
                    // Like `kill -9` right after record n.
                    std::process::abort();
                }
                if Some(n) == stop {
                    let _ = rustix::process::kill_process(
                        rustix::process::getpid(),
                        rustix::process::Signal::STOP,
                    );
                }
            }) as std::sync::Arc<dyn Fn(u64) + Send + Sync>
        });
    Ok(Faults {
        fail_after_records: number(TEST_FAIL_AFTER_RECORDS)?,
        points: abort.into_iter().chain(stop).collect(),
        at,
    })
}

fn number(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::input(format!("{name}={v:?}: not a number of records"))),
        Err(_) => Ok(None),
    }
}
