//! `decom verify --recheck`: years later, prove again that nothing the
//! certificate calls disposed exists. Every location of the approved plan is
//! traced afresh with the plan's own manifest (the one trace code path), and
//! each disposed artifact is looked for:
//!
//! - at its path (local files: also an `lstat` of the exact path, whatever
//!   the manifest's filters say) or at its key (S3: any object version there);
//! - by content, in locations that match by hash: any file or object version
//!   whose SHA-256 equals a disposed artifact's.
//!
//! Directories, symlinks and delete markers carry no model data; an empty
//! directory recreated at a disposed path is not a reappearance.

use super::Certificate;
use crate::error::Result;
use crate::journal::Outcome;
use crate::plan::{Item, Plan};
use crate::progress::Progress;
use crate::store::{self, Rechecking, Setup};
use std::collections::HashSet;

/// What came back: one line per reappearance, naming where. Each store
/// looks again at its own locations ([`store::Store::recheck`]).
pub fn recheck(
    cert: &Certificate,
    plan: &Plan,
    s3_override: &crate::store::s3::Settings,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let disposed: HashSet<u32> = cert
        .artifacts
        .iter()
        .filter(|a| a.outcome == Outcome::Disposed)
        .map(|a| a.id)
        .collect();
    let gone: Vec<&Item> = plan
        .artifacts
        .iter()
        .filter(|a| disposed.contains(&a.id))
        .map(|a| &a.item)
        .collect();
    let setup = Setup::listing(&plan.manifest, s3_override);
    let mut r = Rechecking::new(plan, gone, progress);
    for s in &mut store::registry(&setup) {
        s.recheck(&mut r)?;
    }
    Ok(r.found_again)
}
