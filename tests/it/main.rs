//! One integration-test binary (ripgrep's layout): every test runs the real
//! `decom` binary on real files in a temporary tree.

mod attacks;
mod common;
mod lifecycle;
mod overwrite;
mod signatures;
mod tracing;
