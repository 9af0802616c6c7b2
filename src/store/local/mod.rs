//! Local files: walked, hashed and selected (`trace`), with the model
//! stores decom knows (`model_stores`) and the `[[keep]]` folders
//! (`keep`); overwritten and unlinked (`dispose`, `overwrite`), one worker
//! thread per device (one disk at a time each, several disks at once),
//! then links and directories on the calling thread.

pub mod dispose;
pub mod keep;
pub mod model_stores;
pub mod overwrite;
pub mod trace;

use super::{Ctx, Disposing, Kind, Place, Rechecking, Store, Tracing};
use crate::error::{Error, Result};
use crate::journal::{self, ArtifactState, Event, Outcome};
use crate::localfs::Anchor;
use crate::manifest::Target;
use crate::plan::{Artifact, Item, Plan, PlanLocation, Risk};
use crate::progress::Phase;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Devices overwritten at once, at most (each worker also runs a generator thread).
pub const MAX_DEVICE_WORKERS: usize = 8;

/// Local anchors per location index: the re-identified root, or why not.
type Anchors = HashMap<u32, std::result::Result<Anchor, String>>;

/// The local store. Trace judges hard links and the model stores across
/// every local location, so it remembers them between locations.
#[derive(Default)]
pub struct Local {
    links: trace::LinkIndex,
    models: model_stores::Seen,
    traced: usize,
}

impl Store for Local {
    fn kind(&self) -> Kind {
        Kind::Local
    }

    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        let Target::Local(root) = at.target else {
            return Err(Error::input(format!(
                "{}: not a local location",
                at.loc.uri
            )));
        };
        self.traced += 1;
        let (pl, found, risks) = trace::trace_location(
            at.n,
            at.loc,
            root,
            &t.criteria,
            (&mut self.links, &mut self.models),
            t.progress,
        )?;
        for f in found {
            t.hold(at.n, f.into_item());
        }
        Ok((pl, risks))
    }

    fn trace_finish(&mut self, t: &mut Tracing<'_>) -> Result<Vec<Risk>> {
        if self.traced > 0 {
            model_stores::named_model_found(&t.resolved.manifest.model, &self.models)?;
        }
        let mut risks = self.links.resolve(t.held_mut());
        let labels: Vec<String> = t.resolved.manifest.keep.iter().map(|k| k.label()).collect();
        let keep: Vec<(PathBuf, &str)> = t
            .resolved
            .keep
            .iter()
            .cloned()
            .zip(labels.iter().map(String::as_str))
            .collect();
        risks.extend(keep::identical(&keep, t.held_mut()));
        Ok(risks)
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        let (ctx, plan) = (d.ctx, d.plan);
        let state = &d.replay.state;
        let anchors = anchors(plan);
        let mut files = d.undecided(|i| matches!(i, Item::File(_)));
        settle_before_writing(ctx, plan, &mut files, state)?;
        // Links, then directories deepest first, once every file is gone.
        let mut rest = d.undecided(|i| matches!(i, Item::Symlink(_)));
        let mut dirs = d.undecided(|i| matches!(i, Item::Dir(_)));
        dirs.sort_by_key(|a| std::cmp::Reverse(a.item.path().matches('/').count()));
        rest.extend(dirs);

        let bytes: u64 = files
            .iter()
            .map(|a| a.item.size() * plan.profile.passes.len().max(1) as u64)
            .sum();
        if !files.is_empty() || !rest.is_empty() {
            ctx.progress
                .start(Phase::Dispose, (files.len() + rest.len()) as u64, bytes);
        }
        let run = Run {
            ctx,
            plan,
            anchors: &anchors,
            state,
        };
        run.files_by_device(files)?;
        for a in rest {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            run.dispose(a)?;
        }
        ctx.progress.finish();
        Ok(())
    }

    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        // Exact paths first: no filter can hide them.
        let mut by_path = std::collections::HashSet::new();
        for item in &r.gone {
            let Item::File(f) = item else { continue };
            by_path.insert(f.path.as_str());
            if std::fs::symlink_metadata(&f.path).is_ok() {
                let same = crate::hash::hash_files(&[f.path.clone().into()])
                    .pop()
                    .and_then(|r| r.ok())
                    .is_some_and(|h| h == f.sha256);
                let what = if same {
                    " with the disposed content"
                } else {
                    " (other content)"
                };
                r.found_again
                    .push(format!("{}: exists again{what}", f.path));
            }
        }
        let mut links = trace::LinkIndex::default();
        for (pl, loc) in r.locations(Kind::Local) {
            let Some(l) = pl.local() else { continue };
            let root = Path::new(&l.root);
            // A location that is gone entirely holds nothing.
            if std::fs::symlink_metadata(root).is_err() {
                continue;
            }
            let criteria = r.criteria.clone();
            let (_, found, _) = trace::trace_location(
                pl.index,
                loc,
                root,
                &criteria,
                (&mut links, &mut Default::default()),
                r.progress,
            )?;
            for f in found {
                let item = f.into_item();
                if let Item::File(f) = &item
                    && !by_path.contains(f.path.as_str())
                {
                    r.copy_of(loc, &f.path, Some(&f.sha256));
                }
            }
        }
        Ok(())
    }
}

/// Re-identify each location root (same device and inode, no symlink on
/// the way); a root that is not the approved directory any more skips its
/// artifacts.
fn anchors(plan: &Plan) -> Anchors {
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
    anchors
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
    use model_stores::Stores;
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
struct Run<'a, 'c> {
    ctx: &'a Ctx<'c>,
    plan: &'a Plan,
    anchors: &'a Anchors,
    state: &'a BTreeMap<u32, ArtifactState>,
}

impl Run<'_, '_> {
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
    /// ([`dispose::files`]), journal their outcomes in one record and report
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
        let done: Vec<(u32, dispose::Done)> = match self
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
                dispose::files(self.ctx, anchor, root, &items)?
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
            self.ctx.report(a, outcome, reason.as_ref());
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
                Item::Symlink(l) => dispose::symlink(ctx, anchor, root, a.id, l, st)?,
                Item::Dir(d) => dispose::dir(ctx, anchor, root, a.id, d, st)?,
                _ => unreachable!("files go through dispose_files"),
            },
        };
        ctx.append(Event::Outcome {
            id: a.id,
            outcome,
            reason: reason.clone(),
        })?;
        self.ctx.report(a, outcome, reason.as_ref());
        Ok(())
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

/// Cut a device's queue (plan order) into the groups [`dispose::files`]
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
