//! `decom hash`: SHA-256 of files in the format `sha256sum` writes, so the
//! output can serve as a manifest's `sha256sums` file. Files are hashed in
//! parallel with decom's hasher (the one trace and verification use).

use super::records::Record;
use super::{Printer, exit};
use crate::error::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct HashArgs {
    /// Files to hash.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(a: &HashArgs, p: &Printer) -> Result<u8> {
    let mut code = exit::OK;
    for (path, r) in a.files.iter().zip(crate::hash::hash_files(&a.files)) {
        match r {
            Ok(h) if p.json => p.record(&Record::Hash { path, sha256: &h }),
            Ok(h) => p.data(&format!("{h}  {}", path.display())),
            Err(e) => {
                p.warn(&format!("{}: {e}", path.display()));
                code = exit::INCOMPLETE;
            }
        }
    }
    Ok(code)
}
