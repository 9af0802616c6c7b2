//! decom: the secure end of life of AI models.
//!
//! The library follows the disposal lifecycle: a [`manifest`] says what to
//! look for, [`trace`] finds it and writes a [`plan`], the custodian approves
//! the plan with a [`sign`]ature, [`dispose`] destroys exactly what the plan
//! lists while the [`journal`] records every step, and [`cert`] turns the
//! journal into a signed disposal certificate.
//!
//! Nothing below `cli` prints. Progress and questions reach the terminal
//! through the [`progress::Progress`] trait, implemented by the CLI. The
//! CLI and its crates (clap, indicatif, rpassword, signal-hook) are the
//! `cli` feature: `cargo build --lib --no-default-features` builds the
//! library alone.

pub mod archive;
pub mod cert;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dispose;
pub mod error;
pub mod exit_code;
pub mod hash;
pub mod journal;
pub mod localfs;
pub mod manifest;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod render;
pub mod sign;
pub mod store;
pub mod timestamp;
pub mod trace;
pub mod util;

pub use error::{Error, Result};

/// The tool's name and version as recorded in plans and certificates.
pub const TOOL_NAME: &str = "decom";
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
