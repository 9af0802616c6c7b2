//! Execute: destroy exactly what an approved plan lists, journal each step,
//! and build the certificate from the journal.
//!
//! The caller (the CLI) has already checked the custodian's approval and the
//! two-person rule (see [`crate::sign::roles`]); this module re-identifies
//! every artifact before touching it and never acts on anything the plan
//! does not list. Per-artifact failures become outcomes; the run goes on.
//! All local work is blocking and runs on the calling thread.

pub mod local;
pub mod overwrite;
pub mod s3;

use crate::cert::{self, Certificate, Party};
use crate::error::{Error, Result};
use crate::journal::{self, Event, Journal, Outcome};
use crate::localfs::Anchor;
use crate::plan::{Item, Plan};
use crate::profile::Profile;
use crate::progress::Progress;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What the per-artifact steps share.
pub struct Ctx<'a> {
    pub journal: Journal,
    pub profile: &'a Profile,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

/// Everything execute needs, resolved and checked by the caller.
pub struct Request<'a> {
    pub plan: &'a Plan,
    pub plan_sha256: String,
    pub plan_file: String,
    pub approvals: Vec<Party>,
    pub operator: Party,
    pub journal_path: PathBuf,
    pub resume: bool,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

/// The file names execute writes beside the plan (or in `--out`).
pub fn journal_path(out_dir: &Path) -> PathBuf {
    out_dir.join("journal.jsonl")
}

/// Run the disposal. Returns the certificate built from the journal; the
/// caller writes and signs it. `Err(Interrupted)` leaves a consistent journal.
pub fn execute(req: Request<'_>) -> Result<Certificate> {
    let plan = req.plan;
    let (journal, records) = Journal::open(&req.journal_path, &req.plan_sha256, req.resume)?;
    let started = records
        .first()
        .map(|r| r.time.clone())
        .unwrap_or_else(crate::util::now_rfc3339);
    let mut ctx = Ctx {
        journal,
        profile: &plan.profile,
        cancel: req.cancel,
        progress: req.progress,
    };
    ctx.journal.append(Event::RunStarted {
        plan_sha256: req.plan_sha256.clone(),
        operator: req.operator.principal.clone(),
        operator_fingerprint: req.operator.key_fingerprint.clone(),
        resume: !records.is_empty(),
    })?;
    // A failed artifact is tried again on resume (a flaky endpoint, a
    // read-back error); skipped and retained ones stay decided.
    let mut state = journal::replay(&records);
    for s in state.values_mut() {
        if s.outcome.as_ref().is_some_and(|o| o.0 == Outcome::Failed) {
            s.outcome = None;
        }
    }

    // Local artifacts: re-identify each location root (same device and
    // inode, no symlink on the way), then files, links, directories deepest first.
    let mut anchors: HashMap<u32, Result<Anchor, String>> = HashMap::new();
    for loc in &plan.locations {
        let Some(root) = loc.local() else { continue };
        let a = Anchor::open(Path::new(&root.root), root.cross_filesystems)
            .map_err(|e| e.to_string())
            .and_then(|a| {
                let ino = a.inode().map_err(|e| e.to_string())?;
                if a.device() != root.device || ino != root.inode {
                    Err(format!(
                        "location root {} is not the approved directory any more",
                        root.root
                    ))
                } else {
                    Ok(a)
                }
            });
        anchors.insert(loc.index, a);
    }
    let mut order: Vec<&crate::plan::Artifact> = plan
        .artifacts
        .iter()
        .filter(|a| matches!(a.item, Item::File(_)))
        .collect();
    order.extend(
        plan.artifacts
            .iter()
            .filter(|a| matches!(a.item, Item::Symlink(_))),
    );
    let mut dirs: Vec<_> = plan
        .artifacts
        .iter()
        .filter(|a| matches!(a.item, Item::Dir(_)))
        .collect();
    dirs.sort_by_key(|a| std::cmp::Reverse(a.item.path().matches('/').count()));
    order.extend(dirs);

    let todo: Vec<_> = order
        .into_iter()
        .filter(|a| state.get(&a.id).and_then(|s| s.outcome.as_ref()).is_none())
        .collect();
    let bytes: u64 = todo
        .iter()
        .map(|a| a.item.size() * plan.profile.passes.len().max(1) as u64)
        .sum();
    if !todo.is_empty() {
        req.progress.start("dispose", todo.len() as u64, bytes);
    }
    let empty = journal::ArtifactState::default();
    for a in todo {
        if req.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let st = state.get(&a.id).unwrap_or(&empty);
        let root = plan
            .location(a.location)
            .local()
            .expect("local artifacts live in local locations");
        let (outcome, reason) = match anchors
            .get(&a.location)
            .expect("every local location has an anchor")
        {
            Err(why) => (Outcome::SkippedChanged, Some(why.clone())),
            Ok(anchor) => match &a.item {
                Item::File(f) => local::file(&mut ctx, anchor, root, a.id, f, st)?,
                Item::Symlink(l) => local::symlink(&mut ctx, anchor, root, a.id, l, st)?,
                Item::Dir(d) => local::dir(&mut ctx, anchor, root, a.id, d, st)?,
                _ => unreachable!("only local items are ordered here"),
            },
        };
        ctx.journal.append(Event::Outcome {
            id: a.id,
            outcome,
            reason: reason.clone(),
        })?;
        let line = match &reason {
            Some(r) => format!("{outcome}: {} ({r})", a.item.path()),
            None => format!("{outcome}: {}", a.item.path()),
        };
        if outcome == Outcome::Disposed {
            req.progress.item(&line);
        } else {
            req.progress.warn(&line);
        }
    }
    req.progress.finish();

    // S3 locations, each against the endpoint recorded in the plan.
    for loc in &plan.locations {
        let Some(s3loc) = loc.s3() else { continue };
        let arts: Vec<&crate::plan::Artifact> = plan
            .artifacts
            .iter()
            .filter(|a| a.location == loc.index)
            .collect();
        if arts
            .iter()
            .all(|a| state.get(&a.id).is_some_and(|s| s.outcome.is_some()))
        {
            continue;
        }
        match crate::s3::S3::connect_exact(&s3loc.endpoint) {
            Ok(client) => s3::location(&mut ctx, &client, s3loc, &arts, &state)?,
            Err(e) => {
                let items = arts
                    .iter()
                    .filter(|a| state.get(&a.id).is_none_or(|s| s.outcome.is_none()))
                    .map(|a| journal::OutcomeItem {
                        id: a.id,
                        outcome: Outcome::Failed,
                        reason: Some(format!("cannot reach S3: {e}")),
                    })
                    .collect();
                ctx.journal.append(Event::Outcomes { items })?;
            }
        }
    }

    let records = journal::read(ctx.journal.path())?;
    let cert = cert::build(cert::Inputs {
        plan,
        plan_sha256: &req.plan_sha256,
        plan_file: &req.plan_file,
        approvals: req.approvals,
        operator: req.operator,
        records: &records,
        started,
    });
    ctx.journal.append(Event::RunFinished {
        complete: cert.status == cert::Status::Complete,
    })?;
    Ok(cert)
}
