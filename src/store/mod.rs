//! The seam every store implements: local files (with the model stores
//! decom knows), LUKS volumes, S3 folders (purge, S3 Lifecycle, KMS
//! cryptographic erase). Each store lives in one folder here; `trace`,
//! `dispose` and `cert::recheck` reach them only through this module.

pub mod gcs;
pub mod http;
pub mod local;
pub mod luks;
pub mod mlflow;
pub mod s3;

use crate::error::{Error, Result};
use crate::journal::{ArtifactState, Event, Journal, Outcome, Replay};
use crate::manifest::{Component, Known, Location, MatchMode, Model, Resolved, Target};
use crate::plan::spool::Spool;
use crate::plan::{Artifact, Item, Plan, PlanLocation, Risk, Totals};
use crate::profile::Profile;
use crate::progress::Progress;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// What decides, besides a location's own settings, which artifacts are
/// planned and how they are described: the known components (hash
/// matches), what the model is called in the stores decom knows (Hugging
/// Face, Ollama, PyTorch hub), the folders of models that stay (`[[keep]]`),
/// and whether the profile overwrites (which decides a file's sanitization
/// category). Trace takes it from the resolved manifest; `verify --recheck`
/// from the approved plan.
#[derive(Debug, Clone)]
pub struct Criteria<'a> {
    pub components: &'a [Component],
    pub model: &'a Model,
    pub keep: Vec<PathBuf>,
    pub overwrites: bool,
    /// decom's own inputs and outputs (the manifest and the files it
    /// names, the plan and its approval, the running binary), by real
    /// path: never planned, and named in the plan as excluded.
    pub own_files: Vec<PathBuf>,
}

impl<'a> Criteria<'a> {
    pub fn of_manifest(r: &'a Resolved) -> Self {
        Criteria {
            components: &r.components,
            model: &r.manifest.model,
            keep: r.keep.clone(),
            overwrites: !r.profile.passes.is_empty(),
            own_files: Vec::new(),
        }
    }

    /// The plan's criteria; `[[keep]]` folders that no longer exist keep
    /// nothing.
    pub fn of_plan(p: &'a Plan) -> Self {
        Criteria {
            components: &p.components,
            model: &p.model,
            keep: p
                .manifest
                .keep
                .iter()
                .filter_map(
                    |k| match crate::manifest::resolve_uri(&k.uri, Path::new("/")) {
                        Ok(Target::Local(p)) => Some(p),
                        _ => None,
                    },
                )
                .collect(),
            overwrites: !p.profile.passes.is_empty(),
            own_files: Vec::new(),
        }
    }

    pub fn known(&self) -> Known {
        Known::new(self.components)
    }
}

/// What the per-artifact steps share, across the device workers.
pub struct Ctx<'a> {
    journal: Mutex<Journal>,
    pub profile: &'a Profile,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Progress,
}

impl<'a> Ctx<'a> {
    pub fn new(
        journal: Journal,
        profile: &'a Profile,
        cancel: &'a AtomicBool,
        progress: &'a dyn Progress,
    ) -> Self {
        Ctx {
            journal: Mutex::new(journal),
            profile,
            cancel,
            progress,
        }
    }

    /// Journal one artifact's outcome and report it.
    pub fn outcome(
        &self,
        a: &Artifact,
        outcome: Outcome,
        reason: impl Into<Option<String>>,
    ) -> Result<()> {
        let reason = reason.into();
        self.report(a, outcome, reason.as_ref());
        self.append(Event::Outcome {
            id: a.id,
            outcome,
            reason,
        })
    }

    /// Tell the operator an artifact's outcome (a warning unless disposed).
    pub fn report(&self, a: &Artifact, outcome: Outcome, reason: Option<&String>) {
        let line = match reason {
            Some(r) => format!("{outcome}: {} ({r})", a.item.path()),
            None => format!("{outcome}: {}", a.item.path()),
        };
        if outcome == Outcome::Disposed {
            self.progress.item(&line);
        } else {
            self.progress.warn(&line);
        }
    }
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

    pub fn journal_path(&self) -> PathBuf {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path()
            .to_path_buf()
    }
}

/// The phases every store goes through. `trace`, `dispose::execute` and
/// `cert::recheck` each hold the [`registry`] and call these; none of them
/// knows what a store is made of.
pub trait Store {
    /// This store's kind (the registry's key).
    fn kind(&self) -> Kind;

    /// Before any location is traced: the locations this store adds to
    /// the plan (a registry entry's artifact locations, and the entry
    /// itself), with their risks.
    fn expand(&mut self, _r: &Resolved) -> Result<(Vec<Location>, Vec<Risk>)> {
        Ok((Vec::new(), Vec::new()))
    }

    /// Trace one location of this kind: describe it, hand every artifact
    /// found to `t` ([`Tracing::hold`] or [`Tracing::spool`]), and return
    /// the location's residual risks.
    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)>;

    /// Once every location is traced: judgements across this kind's
    /// locations (hard links, kept copies, models not found).
    fn trace_finish(&mut self, _t: &mut Tracing<'_>) -> Result<Vec<Risk>> {
        Ok(Vec::new())
    }

    /// Before the journal opens: refuse what this store cannot carry out
    /// (exit 2, nothing touched).
    fn preflight(&mut self, _p: &Preflight<'_>) -> Result<()> {
        Ok(())
    }

    /// Dispose of this kind's artifacts that have no outcome yet:
    /// re-identify each, destroy it, prove it gone, journal the outcome.
    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()>;

    /// Years later: look again at this kind's locations for anything the
    /// certificate calls disposed, and say where it is in `r`.
    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()>;
}

pub use crate::manifest::StoreKind as Kind;

/// How the stores are set up for one command.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The manifest's (or approved plan's) `[s3]`, with the command line's
    /// settings over it.
    pub s3: s3::Settings,
    /// How execute drives and proves S3 locations (execute only).
    pub s3_run: Option<s3::Run>,
    /// The manifest's (or approved plan's) `[gcs]`.
    pub gcs: gcs::Settings,
}

impl Setup {
    /// For trace and recheck: the manifest's (or approved plan's) `[s3]`
    /// with the command line's settings over it.
    pub fn listing(manifest: &crate::manifest::Manifest, over: &s3::Settings) -> Setup {
        Setup {
            s3: manifest.s3.clone().unwrap_or_default().overlay(over),
            s3_run: None,
            gcs: manifest.gcs.clone().unwrap_or_default(),
        }
    }
}

/// Every store decom knows, in the order execute disposes of them: a
/// registry entry's aliases and version first (nothing new loads the model
/// once disposal began), local files (a volume is erased, a bucket purged,
/// after the files), and the registry's runs last, after their artifacts. A
/// new store is one line here.
pub fn registry(setup: &Setup) -> Vec<Box<dyn Store>> {
    vec![
        Box::new(mlflow::Entries::default()),
        Box::new(local::Local::default()),
        Box::new(luks::Luks),
        Box::new(s3::Folders::new(setup)),
        Box::new(gcs::Buckets::new(setup)),
        Box::new(mlflow::Runs),
    ]
}

/// One location to trace: its number in the plan, its manifest entry and
/// where it resolved to.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub n: u32,
    pub loc: &'a Location,
    pub target: &'a Target,
}

/// What every store's trace shares: the criteria, where found artifacts go
/// (held in memory, or spooled to a file beside the plan), and the paths
/// already planned (the same artifact reached from two locations is
/// planned once).
pub struct Tracing<'a> {
    pub criteria: Criteria<'a>,
    pub resolved: &'a Resolved,
    pub progress: &'a dyn Progress,
    held: Vec<Artifact>,
    spool: Option<std::io::BufWriter<std::fs::File>>,
    spool_dir: &'a Path,
    spooled: Vec<(u32, u64)>,
    spool_totals: Totals,
    seen: HashSet<String>,
}

impl<'a> Tracing<'a> {
    pub fn new(
        criteria: Criteria<'a>,
        resolved: &'a Resolved,
        progress: &'a dyn Progress,
        spool_dir: &'a Path,
    ) -> Self {
        Tracing {
            criteria,
            resolved,
            progress,
            held: Vec::new(),
            spool: None,
            spool_dir,
            spooled: Vec::new(),
            spool_totals: Totals::default(),
            seen: HashSet::new(),
        }
    }

    /// Keep an artifact of location `n` in memory (judged later across
    /// locations), unless another location planned its path already.
    pub fn hold(&mut self, n: u32, item: Item) {
        if self.seen.insert(item.path().into_owned()) {
            self.held.push(Artifact {
                id: 0,
                location: n,
                item,
            });
        }
    }

    /// The one risk of a store that matches content by SHA-256 only: the
    /// components known only by SHA-384 or SHA-512 were not looked for in
    /// its `match = "hash"` locations (`how` says how it matches).
    pub fn sha256_only(&self, kind: Kind, how: &str) -> Vec<Risk> {
        let r = self.resolved;
        let hashed: Vec<&str> = r
            .manifest
            .locations
            .iter()
            .zip(&r.targets)
            .filter(|(l, t)| l.match_mode == MatchMode::Hash && t.kind() == kind)
            .map(|(l, _)| l.uri.as_str())
            .collect();
        let no_sha256: Vec<String> = r
            .components
            .iter()
            .filter(|c| c.sha256.is_none())
            .map(|c| c.label())
            .collect();
        if hashed.is_empty() || no_sha256.is_empty() {
            return Vec::new();
        }
        vec![Risk {
            kind: crate::plan::RiskKind::ComponentsNotSearched,
            subject: hashed.join(", "),
            detail: format!(
                "{how}; these component(s) have only SHA-384 or SHA-512 and were not looked for there: {}",
                no_sha256.join(", ")
            ),
        }]
    }

    /// The artifacts held so far, for judgements across locations.
    pub fn held_mut(&mut self) -> &mut Vec<Artifact> {
        &mut self.held
    }

    /// Write an artifact of location `n` to the spool, in the order it
    /// goes into the plan. With `once`, a path planned already is passed
    /// over (two locations in one bucket).
    pub fn spool(&mut self, n: u32, item: &Item, once: bool) -> Result<()> {
        if once && !self.seen.insert(item.path().into_owned()) {
            return Ok(());
        }
        let dir = self.spool_dir;
        if self.spool.is_none() {
            let f = tempfile::tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
            self.spool = Some(std::io::BufWriter::new(f));
        }
        let w = self.spool.as_mut().expect("opened above");
        serde_json::to_writer(&mut *w, item)
            .map_err(std::io::Error::other)
            .and_then(|()| std::io::Write::write_all(w, b"\n"))
            .map_err(|e| Error::io(dir, e))?;
        self.spool_totals.add(item);
        match self.spooled.last_mut() {
            Some((l, c)) if *l == n => *c += 1,
            _ => self.spooled.push((n, 1)),
        }
        Ok(())
    }

    /// The held artifacts, the spool (rewound) with how many artifacts
    /// each location spooled, and the totals of both.
    pub(crate) fn into_found(self) -> Result<Found> {
        let mut totals = self.spool_totals;
        for a in &self.held {
            totals.add(&a.item);
        }
        let dir = self.spool_dir;
        let spool = match self.spool {
            Some(w) => {
                let mut f = w.into_inner().map_err(|e| Error::io(dir, e.into_error()))?;
                std::io::Seek::rewind(&mut f).map_err(|e| Error::io(dir, e))?;
                Some(std::io::BufReader::new(f).lines())
            }
            None => None,
        };
        Ok(Found {
            held: self.held,
            spool,
            spooled: self.spooled,
            totals,
        })
    }
}

/// What a trace found, ready to be numbered into the plan.
pub(crate) struct Found {
    pub held: Vec<Artifact>,
    pub spool: Option<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    pub spooled: Vec<(u32, u64)>,
    pub totals: Totals,
}

/// What a store's preflight may look at.
pub struct Preflight<'a> {
    pub plan: &'a Plan,
    /// Whether this run resumes an earlier one (its journal is `journal`).
    pub resume: bool,
    pub journal: &'a Path,
}

/// What a store's disposal shares with the others: the journal and
/// progress ([`Ctx`]), the approved plan, its spooled S3 artifacts and what
/// the journal says of each artifact so far.
pub struct Disposing<'a, 'c> {
    pub ctx: &'a Ctx<'c>,
    pub plan: &'a Plan,
    pub spool: &'a Spool,
    pub replay: &'a Replay<'a>,
}

impl Disposing<'_, '_> {
    /// The plan's (held) artifacts of `kind` that have no outcome yet.
    pub fn undecided(&self, kind: fn(&Item) -> bool) -> Vec<&Artifact> {
        self.plan
            .artifacts
            .iter()
            .filter(|a| {
                kind(&a.item)
                    && self
                        .replay
                        .state
                        .get(&a.id)
                        .and_then(|s| s.outcome.as_ref())
                        .is_none()
            })
            .collect()
    }

    /// What the journal says of artifact `id` so far.
    pub fn state(&self, id: u32) -> ArtifactState {
        self.replay.state.get(&id).cloned().unwrap_or_default()
    }
}

/// What recheck looks for, shared by every store: the disposed artifacts,
/// their content hashes, and what was found again so far.
pub struct Rechecking<'a> {
    pub plan: &'a Plan,
    pub criteria: Criteria<'a>,
    pub progress: &'a dyn Progress,
    /// The artifacts the certificate calls disposed.
    pub gone: Vec<&'a Item>,
    /// Disposed content by SHA-256, with where it was.
    by_sha: HashMap<&'a str, String>,
    /// One line per reappearance, naming where.
    pub found_again: Vec<String>,
}

impl<'a> Rechecking<'a> {
    pub fn new(plan: &'a Plan, gone: Vec<&'a Item>, progress: &'a dyn Progress) -> Self {
        let by_sha = gone
            .iter()
            .filter_map(|i| i.sha256().map(|s| (s, i.path().into_owned())))
            .collect();
        Rechecking {
            plan,
            criteria: Criteria::of_plan(plan),
            progress,
            gone,
            by_sha,
            found_again: Vec::new(),
        }
    }

    /// This kind's locations, with their manifest entries.
    pub fn locations(&self, kind: Kind) -> Vec<(&'a PlanLocation, &'a Location)> {
        let plan = self.plan;
        plan.locations
            .iter()
            .filter(|pl| pl.store.kind() == kind)
            .map(|pl| (pl, plan.manifest_location(pl)))
            .collect()
    }

    /// In a location that matches by hash, content found at `here` that
    /// has the SHA-256 of a disposed artifact is a copy of it.
    pub fn copy_of(&mut self, loc: &Location, here: &str, sha256: Option<&str>) {
        if loc.match_mode == MatchMode::Hash
            && let Some(s) = sha256
            && let Some(orig) = self.by_sha.get(s)
        {
            self.found_again.push(format!(
                "{here}: a copy of disposed {orig} (same SHA-256 {s})"
            ));
        }
    }
}
