//! One integration-test binary (ripgrep's layout): every test runs the real
//! `decom` binary on real files in a temporary tree.

mod attacks;
mod bad_inputs;
mod boms;
mod cli;
mod common;
mod compat;
mod crashes;
mod crypto_erase;
mod evidence;
mod extents;
mod faults;
mod fleet;
mod garage;
mod gcs;
mod honesty;
mod hostile;
mod library;
mod lifecycle;
mod luks;
mod mlflow;
mod model_stores;
mod overwrite;
mod retain;
mod rgw;
mod s3;
mod s3_lifecycle;
mod s3_proof;
mod s3_stores;
mod signatures;
mod stores;
mod timestamps;
mod tracing;
