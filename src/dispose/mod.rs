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
//! Local work is blocking: regular files are overwritten by one worker thread
//! per device (one disk at a time each, several disks at once), then links
//! and directories on the calling thread.

pub mod kms;
pub mod lifecycle;
pub mod local;
pub mod luks;
pub mod overwrite;
pub mod s3;

use crate::cert::{self, Certificate, Party, RunFiles};
use crate::error::{Error, Result};
use crate::journal::ArtifactState;
use crate::journal::{self, Event, Faults, Journal, Outcome};
use crate::localfs::Anchor;
use crate::manifest::Person;
use crate::plan::{Approved, Artifact};
use crate::plan::{Item, Plan, Store};
use crate::profile::Profile;
use crate::progress::{Phase, Progress};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Devices overwritten at once, at most (each worker also runs a generator thread).
pub const MAX_DEVICE_WORKERS: usize = 8;

/// What the per-artifact steps share, across the device workers.
pub struct Ctx<'a> {
    journal: Mutex<Journal>,
    pub profile: &'a Profile,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

impl Ctx<'_> {
    /// Append one event to the journal (durable when this returns).
    pub fn append(&self, event: Event) -> Result<()> {
        self.append_all(vec![event])
    }

    /// Append events with one flush (group commit; durable when this returns).
    pub fn append_all(&self, events: Vec<Event>) -> Result<()> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append_all(events)
    }

    fn journal_path(&self) -> PathBuf {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path()
            .to_path_buf()
    }
}

/// Local anchors per location index: the re-identified root, or why not.
type Anchors = HashMap<u32, Result<Anchor, String>>;

/// Everything execute needs, resolved and checked by the caller.
pub struct Request<'a> {
    pub approved: &'a Approved,
    /// Who performs the disposal, for the certificate (NIST App. G).
    pub operator_details: Person,
    /// Where the journal goes.
    pub files: &'a RunFiles,
    pub resume: bool,
    /// How S3 locations are driven and proven, resolved once by [`s3_run`].
    pub s3: S3Run,
    pub faults: Faults,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

/// How this run drives and proves its S3 locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Run {
    /// Requests in flight.
    pub concurrency: usize,
    /// The absence proof the custodian approved (the plan's `[s3] verify`).
    pub proof: s3::Proof,
}

/// Resolve the S3 settings of a run once, before anything is touched:
/// requests in flight from `flag`, else the plan's `[s3] concurrency`, else
/// the default; the absence proof from the plan. Out of range is an input error.
pub fn s3_run(plan: &Plan, flag: Option<usize>) -> Result<S3Run> {
    let approved = plan.manifest.s3.clone().unwrap_or_default();
    let settings = crate::s3::Settings {
        concurrency: flag.or(approved.concurrency),
        ..approved
    };
    Ok(S3Run {
        concurrency: settings.concurrency()?,
        proof: settings.proof()?,
    })
}

/// Run the disposal. Returns the certificate built from the journal; the
/// caller writes and signs it. `Err(Interrupted)` leaves a consistent journal;
/// any other error once the journal is open is [`Error::AfterDestruction`].
pub fn execute(req: Request<'_>) -> Result<Certificate<cert::CertSpool>> {
    lifecycle::preflight(req.approved.plan(), req.s3.concurrency)?;
    // A LUKS volume already erased (on resume) needs no check.
    let mut erased = std::collections::HashSet::new();
    if req.resume {
        let _ = journal::scan(req.files.journal(), |r| {
            if let Event::LuksErased { id, .. } = r.event {
                erased.insert(id);
            }
        });
    }
    luks::preflight(req.approved.plan(), |id| erased.contains(&id))?;
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
    run(&req, journal, replay).map_err(Error::after_destruction)
}

fn run(
    req: &Request<'_>,
    journal: Journal,
    mut replay: journal::Replay<'_>,
) -> Result<Certificate<cert::CertSpool>> {
    let plan = req.approved.plan();
    let spool = req.approved.spool();
    let s3_run = req.s3;
    let resume = replay.first_time().is_some();
    let started = replay
        .first_time()
        .map(str::to_string)
        .unwrap_or_else(crate::util::now_rfc3339);
    let ctx = Ctx {
        journal: Mutex::new(journal),
        profile: &plan.profile,
        cancel: req.cancel,
        progress: req.progress,
    };
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
    let state = &replay.state;

    // Local artifacts: re-identify each location root (same device and
    // inode, no symlink on the way), then files, links, directories deepest first.
    let mut anchors: Anchors = HashMap::new();
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
    let undecided_of = |kind: fn(&Item) -> bool| -> Vec<&Artifact> {
        plan.artifacts
            .iter()
            .filter(|a| {
                kind(&a.item) && state.get(&a.id).and_then(|s| s.outcome.as_ref()).is_none()
            })
            .collect()
    };
    let mut files = undecided_of(|i| matches!(i, Item::File(_)));
    settle_before_writing(&ctx, plan, &mut files, state)?;
    // Links, then directories deepest first, once every file is gone.
    let mut rest = undecided_of(|i| matches!(i, Item::Symlink(_)));
    let mut dirs = undecided_of(|i| matches!(i, Item::Dir(_)));
    dirs.sort_by_key(|a| std::cmp::Reverse(a.item.path().matches('/').count()));
    rest.extend(dirs);

    let bytes: u64 = files
        .iter()
        .map(|a| a.item.size() * plan.profile.passes.len().max(1) as u64)
        .sum();
    if !files.is_empty() || !rest.is_empty() {
        req.progress
            .start(Phase::Dispose, (files.len() + rest.len()) as u64, bytes);
    }
    let local = Local {
        ctx: &ctx,
        plan,
        anchors: &anchors,
        state,
    };
    local.files_by_device(files)?;
    for a in rest {
        if req.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        local.dispose(a)?;
    }
    req.progress.finish();

    // LUKS volumes: cryptographic erase of each whole volume.
    for a in &plan.artifacts {
        let Item::LuksKeyslots(l) = &a.item else {
            continue;
        };
        let Store::Luks(v) = &plan.location(a.location).store else {
            continue;
        };
        let st = state.get(&a.id).cloned().unwrap_or_default();
        if st.outcome.is_none() {
            luks::volume(&ctx, a, v, l, &st)?;
        }
    }

    // S3 locations, each against the endpoint recorded in the plan.
    for loc in &plan.locations {
        let Some(s3loc) = loc.s3() else { continue };
        let arts: Vec<&crate::plan::Artifact> = plan
            .artifacts
            .iter()
            .filter(|a| a.location == loc.index)
            .collect();
        if spool.count(loc.index).0 == 0
            && arts
                .iter()
                .all(|a| state.get(&a.id).is_some_and(|s| s.outcome.is_some()))
        {
            continue;
        }
        let (keys, arts): (Vec<&Artifact>, Vec<&Artifact>) = arts
            .into_iter()
            .partition(|a| matches!(a.item, Item::KmsKey(_)));
        let (delegated, uploads): (Vec<&Artifact>, Vec<&Artifact>) = arts
            .into_iter()
            .partition(|a| matches!(a.item, Item::S3Lifecycle(_)));
        match crate::s3::S3::connect_exact(&s3loc.endpoint, Some(s3_run.concurrency)) {
            Ok(client) => {
                s3::location(
                    &ctx,
                    &client,
                    (loc.index, s3loc),
                    (spool, &uploads),
                    &replay,
                    s3_run.proof,
                )?;
                for a in delegated {
                    let Item::S3Lifecycle(l) = &a.item else {
                        unreachable!("partitioned above")
                    };
                    let st = state.get(&a.id).cloned().unwrap_or_default();
                    if st.outcome.is_none() {
                        lifecycle::folder(
                            &ctx,
                            &client,
                            (loc.index, s3loc.facts.object_lock),
                            a,
                            l,
                            &st,
                        )?;
                    }
                }
                // Cryptographic erase, once the versions are purged.
                if !keys.is_empty() {
                    let mut recheck = kms::Recheck::new(
                        spool,
                        (loc.index, s3loc),
                        journal::Replay::of_file(&ctx.journal_path(), |_| false)?,
                    );
                    for a in &keys {
                        let Item::KmsKey(k) = &a.item else {
                            unreachable!("partitioned above")
                        };
                        let st = state.get(&a.id).cloned().unwrap_or_default();
                        if st.outcome.is_none() {
                            let scheduled = replay.kms_scheduled.contains(&a.id);
                            kms::key(&ctx, &client, (a, k), &st, scheduled, &mut recheck)?;
                        }
                    }
                }
            }
            Err(e) => {
                let why = format!("cannot reach S3: {e}");
                let failed = |id: u32| journal::OutcomeItem {
                    id,
                    outcome: Outcome::Failed,
                    reason: Some(why.clone()),
                };
                let mut items: Vec<journal::OutcomeItem> = uploads
                    .iter()
                    .chain(&delegated)
                    .chain(&keys)
                    .filter(|a| state.get(&a.id).is_none_or(|s| s.outcome.is_none()))
                    .map(|a| failed(a.id))
                    .collect();
                for a in spool.location(loc.index) {
                    let a = a?;
                    if replay.outcome(a.id).is_none() {
                        items.push(failed(a.id));
                        if items.len() >= 10_000 {
                            ctx.append(Event::Outcomes {
                                items: std::mem::take(&mut items),
                            })?;
                        }
                    }
                }
                ctx.append(Event::Outcomes { items })?;
            }
        }
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
    let inputs: Vec<PathBuf> = inputs.iter().map(|p| crate::trace::real_path(p)).collect();
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| crate::trace::real_path(out));
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

/// Journal as skipped (and take out of `files`) what
/// [`recheck_before_writing`] finds changed outside the files themselves.
fn settle_before_writing(
    ctx: &Ctx<'_>,
    plan: &Plan,
    files: &mut Vec<&Artifact>,
    state: &BTreeMap<u32, ArtifactState>,
) -> Result<()> {
    let kept = recheck_before_writing(plan, files, state);
    if kept.is_empty() {
        return Ok(());
    }
    ctx.append(Event::Outcomes {
        items: kept
            .iter()
            .map(|(id, why)| journal::OutcomeItem {
                id: *id,
                outcome: Outcome::SkippedChanged,
                reason: Some(why.clone()),
            })
            .collect(),
    })?;
    for (id, why) in &kept {
        if let Some(a) = files.iter().find(|a| a.id == *id) {
            ctx.progress.warn(&format!(
                "{}: {} ({why})",
                Outcome::SkippedChanged,
                a.item.path()
            ));
        }
    }
    files.retain(|a| !kept.iter().any(|(id, _)| *id == a.id));
    Ok(())
}

/// What is read again before anything is written. Files another process
/// holds open for writing are skipped (unless the location allows it). A
/// planned store entry (an Ollama layer, a Hugging Face shared-store payload) that
/// a manifest or repository link created since approval now needs is
/// kept, skipped as changed since approval with the tag or repository
/// named (`ollama cp` after approval must not lose its layers). Locations
/// that say `shared = "dispose"` approved breaking what depends on them.
fn recheck_before_writing(
    plan: &Plan,
    files: &[&Artifact],
    state: &BTreeMap<u32, ArtifactState>,
) -> Vec<(u32, String)> {
    use crate::trace::stores::Stores;
    let in_store = |p: &Path| {
        let under_blobs =
            |d: Option<&Path>| d.and_then(Path::file_name).is_some_and(|n| n == "blobs");
        under_blobs(p.parent()) || under_blobs(p.parent().and_then(Path::parent))
    };
    let planned: std::collections::HashSet<PathBuf> = plan
        .artifacts
        .iter()
        .filter_map(|a| a.item.local_path().map(PathBuf::from))
        .collect();
    let mut stores = Stores::default();
    let mut out = Vec::new();
    let writers = crate::localfs::open_for_writing();
    for a in files {
        let Item::File(f) = &a.item else { continue };
        let path = Path::new(&f.path);
        let started = state.get(&a.id).is_some_and(|s| s.started.is_some());
        let loc = plan
            .manifest
            .locations
            .iter()
            .find(|l| l.uri == plan.location(a.location).uri);
        if started {
            continue;
        }
        if let Some(who) = writers.get(&(f.device, f.inode))
            && !loc.is_some_and(|l| l.allow_open_files)
        {
            out.push((
                a.id,
                format!(
                    "held open for writing by {}: not disposed (the location does not say allow_open_files = true)",
                    who.join(", ")
                ),
            ));
            continue;
        }
        let disposes_shared = loc.is_some_and(|l| l.shared == crate::manifest::Shared::Dispose);
        if disposes_shared || !in_store(path) {
            continue;
        }
        for dir in path.ancestors().skip(1).take(3) {
            let _ = stores.enter_above(dir);
        }
        let deps = stores.new_dependents(path, &planned);
        if !deps.is_empty() {
            let named: Vec<String> = deps
                .iter()
                .map(|(m, p)| format!("{m} ({})", p.display()))
                .collect();
            out.push((
                a.id,
                format!("kept: needed since approval by {}", named.join(", ")),
            ));
        }
    }
    out
}

/// The local half of a run: what each local artifact's disposal needs.
struct Local<'a, 'c> {
    ctx: &'a Ctx<'c>,
    plan: &'a Plan,
    anchors: &'a Anchors,
    state: &'a BTreeMap<u32, ArtifactState>,
}

impl Local<'_, '_> {
    /// Dispose of regular files: one worker per device, each working through
    /// its device's files in plan order, so two disks are overwritten at once
    /// but no disk gets two interleaved streams. The first hard error (the
    /// journal cannot be written, an interrupt) stops every worker at its
    /// next artifact and is returned.
    fn files_by_device(&self, files: Vec<&Artifact>) -> Result<()> {
        let mut by_device: BTreeMap<u64, Vec<&Artifact>> = BTreeMap::new();
        for a in files {
            by_device
                .entry(a.item.device().expect("files have a device"))
                .or_default()
                .push(a);
        }
        let workers = by_device.len().clamp(1, MAX_DEVICE_WORKERS);
        let mut queues: Vec<Vec<&Artifact>> = vec![Vec::new(); workers];
        for (i, (_, group)) in by_device.into_iter().enumerate() {
            queues[i % workers].extend(group);
        }
        let halt = AtomicBool::new(false);
        let per_batch = batch_files(workers, self.anchors.len());
        let work = |queue: Vec<&Artifact>| -> Result<()> {
            for batch in batches(queue, per_batch) {
                if self.ctx.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                if halt.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if let Err(e) = self.dispose_files(&batch) {
                    halt.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(())
        };
        if queues.len() == 1 {
            return work(queues.pop().expect("one queue"));
        }
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = queues
                .into_iter()
                .map(|q| s.spawn(move || work(q)))
                .collect();
            handles.into_iter().map(crate::util::joined).collect()
        });
        // An interrupt wins over the errors it caused elsewhere.
        let mut first = Ok(());
        for r in results {
            match r {
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) if first.is_ok() => first = Err(e),
                _ => {}
            }
        }
        first
    }

    /// Dispose of regular files of one location and device together
    /// ([`local::files`]), journal their outcomes in one record and report
    /// them.
    fn dispose_files(&self, batch: &[&Artifact]) -> Result<()> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let empty = ArtifactState::default();
        let root = self
            .plan
            .location(first.location)
            .local()
            .expect("local artifacts live in local locations");
        let done: Vec<(u32, local::Done)> = match self
            .anchors
            .get(&first.location)
            .expect("every local location has an anchor")
        {
            Err(why) => batch
                .iter()
                .map(|a| (a.id, (Outcome::SkippedChanged, Some(why.clone()))))
                .collect(),
            Ok(anchor) => {
                let items: Vec<(u32, &crate::plan::LocalFile, &ArtifactState)> = batch
                    .iter()
                    .map(|a| match &a.item {
                        Item::File(f) => (a.id, f, self.state.get(&a.id).unwrap_or(&empty)),
                        _ => unreachable!("only files are batched"),
                    })
                    .collect();
                local::files(self.ctx, anchor, root, &items)?
            }
        };
        let mut done = done;
        done.sort_by_key(|(id, _)| *id);
        self.ctx.append(Event::Outcomes {
            items: done
                .iter()
                .map(|(id, (outcome, reason))| journal::OutcomeItem {
                    id: *id,
                    outcome: *outcome,
                    reason: reason.clone(),
                })
                .collect(),
        })?;
        for (id, (outcome, reason)) in done {
            let a = batch.iter().find(|a| a.id == id).expect("from the batch");
            self.report(a, outcome, reason.as_ref());
        }
        Ok(())
    }

    /// Dispose of one link or directory, journal its outcome and report it.
    fn dispose(&self, a: &Artifact) -> Result<()> {
        let ctx = self.ctx;
        let empty = ArtifactState::default();
        let st = self.state.get(&a.id).unwrap_or(&empty);
        let root = self
            .plan
            .location(a.location)
            .local()
            .expect("local artifacts live in local locations");
        let (outcome, reason) = match self
            .anchors
            .get(&a.location)
            .expect("every local location has an anchor")
        {
            Err(why) => (Outcome::SkippedChanged, Some(why.clone())),
            Ok(anchor) => match &a.item {
                Item::Symlink(l) => local::symlink(ctx, anchor, root, a.id, l, st)?,
                Item::Dir(d) => local::dir(ctx, anchor, root, a.id, d, st)?,
                _ => unreachable!("files go through dispose_files"),
            },
        };
        ctx.append(Event::Outcome {
            id: a.id,
            outcome,
            reason: reason.clone(),
        })?;
        self.report(a, outcome, reason.as_ref());
        Ok(())
    }

    fn report(&self, a: &Artifact, outcome: Outcome, reason: Option<&String>) {
        let ctx = self.ctx;
        let line = match &reason {
            Some(r) => format!("{outcome}: {} ({r})", a.item.path()),
            None => format!("{outcome}: {}", a.item.path()),
        };
        if outcome == Outcome::Disposed {
            ctx.progress.item(&line);
        } else {
            ctx.progress.warn(&line);
        }
    }
}

/// Files at most this large are disposed of in batches.
const BATCH_FILE_BYTES: u64 = 16 << 20;
/// A batch holds at most this many files and bytes.
const BATCH_FILES: usize = 512;
const BATCH_BYTES: u64 = 256 << 20;

/// Descriptors kept free of batches besides the location roots (journal,
/// stdio, the S3 client's sockets, …).
const SPARE_FDS: u64 = 32;

/// Files per batch: a batch holds two descriptors per file (the file and
/// its directory), and every worker's batch must fit the process's limit
/// at once, beside the `roots` held open (a soft limit of 1024 is common),
/// else files would fail to open.
fn batch_files(workers: usize, roots: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let spare = SPARE_FDS + roots as u64;
    let per_worker = limit.saturating_sub(spare) / (2 * workers.max(1) as u64);
    per_worker.clamp(1, BATCH_FILES as u64) as usize
}

/// Cut a device's queue (plan order) into the groups [`local::files`]
/// takes together: consecutive small files of one location on one device
/// (one `syncfs` covers them), at most `max_files` files and
/// [`BATCH_BYTES`]; a larger file goes alone.
fn batches(queue: Vec<&Artifact>, max_files: usize) -> Vec<Vec<&Artifact>> {
    let mut out: Vec<Vec<&Artifact>> = Vec::new();
    let mut bytes = 0u64;
    for a in queue {
        let size = a.item.size();
        let joins = out.last().is_some_and(|b| {
            let last = b[b.len() - 1];
            size <= BATCH_FILE_BYTES
                && last.item.size() <= BATCH_FILE_BYTES
                && last.location == a.location
                && last.item.device() == a.item.device()
                && b.len() < max_files
                && bytes + size <= BATCH_BYTES
        });
        if joins {
            bytes += size;
            out.last_mut().expect("checked").push(a);
        } else {
            bytes = size;
            out.push(vec![a]);
        }
    }
    out
}
