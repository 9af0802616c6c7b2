//! Execute: destroy exactly what an approved plan lists, journal each step,
//! and build the certificate from the journal.
//!
//! [`execute`] takes an [`Approved`] plan, which only
//! [`Approved::verify`] can build (custodian signature over the exact bytes,
//! operator role, two-person rule). This module re-identifies every artifact
//! before touching it and never acts on anything the plan does not list.
//! Per-artifact failures become outcomes; the run goes on. Once the journal
//! is open every error is [`Error::AfterDestruction`]: never "nothing was
//! touched" after something may have been.
//! Each store disposes of its own artifacts, in the order of
//! [`store::registry`]: local files, LUKS volumes, S3 folders.

use crate::cert::{self, Certificate, Party, RunFiles};
use crate::error::{Error, Result};
use crate::journal::{self, Event, Faults, Journal};
use crate::manifest::Person;
use crate::plan::{Approved, Item, Plan};
use crate::progress::Progress;
pub use crate::store::Ctx;
use crate::store::{self, Disposing, Preflight, Setup, Store, s3};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Everything execute needs, resolved and checked by the caller.
pub struct Request<'a> {
    pub approved: &'a Approved,
    /// Who performs the disposal, for the certificate (NIST App. G).
    pub operator_details: Person,
    /// Where the journal goes.
    pub files: &'a RunFiles,
    pub resume: bool,
    /// How S3 locations are driven and proven, resolved once by [`s3::Run::of`].
    pub s3: s3::Run,
    pub faults: Faults,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

/// Run the disposal. Returns the certificate built from the journal; the
/// caller writes and signs it. `Err(Interrupted)` leaves a consistent journal;
/// any other error once the journal is open is [`Error::AfterDestruction`].
pub fn execute(req: Request<'_>) -> Result<Certificate<cert::CertSpool>> {
    let setup = Setup {
        s3: Default::default(),
        s3_run: Some(req.s3),
        gcs: req.approved.plan().manifest.gcs.clone().unwrap_or_default(),
    };
    let mut stores = store::registry(&setup);
    for s in &mut stores {
        s.preflight(&Preflight {
            plan: req.approved.plan(),
            resume: req.resume,
            journal: req.files.journal(),
        })?;
    }
    // Every artifact's state is replayed compactly; local ones in full.
    let spool = req.approved.spool();
    let mut replay = journal::Replay::new(|id| !spool.contains(id));
    let journal = Journal::open(
        req.files.journal(),
        req.approved.sha256(),
        req.resume,
        req.faults.clone(),
        |r| replay.add(r),
    )?;
    run(&req, &mut stores, journal, replay).map_err(Error::after_destruction)
}

fn run(
    req: &Request<'_>,
    stores: &mut [Box<dyn Store>],
    journal: Journal,
    mut replay: journal::Replay<'_>,
) -> Result<Certificate<cert::CertSpool>> {
    let plan = req.approved.plan();
    let spool = req.approved.spool();
    let resume = replay.first_time().is_some();
    let started = replay
        .first_time()
        .map(str::to_string)
        .unwrap_or_else(crate::util::now_rfc3339);
    let ctx = Ctx::new(journal, &plan.profile, req.cancel, req.progress);
    let operator = req.approved.operator();
    ctx.append(Event::RunStarted {
        plan_sha256: req.approved.sha256().to_string(),
        operator: operator.principal.clone(),
        operator_fingerprint: operator.key_fingerprint.clone(),
        resume,
    })?;
    // A failed artifact is tried again on resume (a flaky endpoint, a
    // read-back error), and a pending one (S3 Lifecycle) checked again;
    // skipped and retained ones stay decided.
    replay.retry_failed_and_pending();
    let disposing = Disposing {
        ctx: &ctx,
        plan,
        spool,
        replay: &replay,
    };
    for s in stores.iter_mut() {
        s.dispose(&disposing)?;
    }

    let finished = journal::Replay::of_file(&ctx.journal_path(), |id| !spool.contains(id))?;
    let cert = cert::build(cert::Inputs {
        plan,
        spool,
        plan_sha256: req.approved.sha256(),
        plan_file: req.approved.file_name(),
        approvals: req
            .approved
            .approvals()
            .iter()
            .map(|s| Party::new(s, Person::default()))
            .collect(),
        operator: Party::new(operator, req.operator_details.clone()),
        journal: &finished,
        started,
        part: req.approved.part(),
    })?;
    ctx.append(Event::RunFinished {
        complete: cert.status == cert::Status::Complete,
    })?;
    Ok(cert)
}

/// Refuse, before anything is touched, a plan that would destroy
/// execute's own inputs (the plan, its approval, the trusted signers file,
/// the key) or remove the folder the journal and certificate go to: the
/// evidence of a disposal must outlive it.
pub fn check_own_files(plan: &Plan, inputs: &[&Path], out: &Path) -> Result<()> {
    let inputs: Vec<PathBuf> = inputs.iter().map(|p| crate::util::real_path(p)).collect();
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| crate::util::real_path(out));
    for a in &plan.artifacts {
        let Some(p) = a.item.local_path() else {
            continue;
        };
        let p = Path::new(p);
        if let Some(i) = inputs.iter().find(|i| *i == p) {
            return Err(Error::refused(format!(
                "the plan lists {}, an input of this execute: decom never destroys its own inputs; approve a plan without it",
                i.display()
            )));
        }
        if matches!(a.item, Item::Dir(_)) && out.starts_with(p) {
            return Err(Error::refused(format!(
                "--out {} lies in {}, a folder the plan removes: put the journal and certificate elsewhere",
                out.display(),
                p.display()
            )));
        }
    }
    Ok(())
}
