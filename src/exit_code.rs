//! The process exit codes decom promises (repeated in the README). They live
//! at the bottom of the crate, like nextest's `exit_codes.rs`, so that the
//! library can name what an outcome means without knowing the CLI; only
//! `cli` maps errors and outcomes to them.

/// Success: the disposal is complete, or the certificate verified.
pub const OK: u8 = 0;
/// Disposal incomplete, or a verification failed (a certificate or signature
/// with any byte changed is a failed verification). Also every error once
/// destruction has begun: the journal lets `execute --resume` continue.
pub const INCOMPLETE: u8 = 1;
/// Usage or input error, or a refusal on safety grounds: nothing was touched.
pub const USAGE: u8 = 2;
/// Interrupted (Ctrl-C, SIGTERM); run again with `--resume`.
pub const INTERRUPTED: u8 = 130;
