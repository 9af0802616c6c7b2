//! Tracing a local location in three steps: one walk (walkdir, never
//! following links, not crossing filesystems unless allowed) that chooses
//! candidates by match mode, include and exclude globs and the Hugging Face
//! cache layout; hashing of the candidates in parallel on all cores, each
//! file read once; and the selection by content.
//!
//! In `match = "hash"` locations only files whose size equals a known
//! component's size are read (when every component's size is known).
//!
//! Model stores the walk meets ([`super::stores`]) decide ownership: the
//! model's own Hugging Face repository, Ollama manifest and layers and
//! PyTorch hub checkpoints are planned whatever the match mode; content
//! another model's store needs, and everything under a `[[keep]]` folder,
//! is kept (a residual risk says so) unless the location says
//! `shared = "dispose"`, and then the plan names what will break. Files
//! whose blocks are shared with a reflinked copy or snapshot (FIEMAP) are
//! a residual risk too.

use super::model_stores::{Ours, Own, Seen, Stores};
use crate::error::{Error, IoContext, Result};
use crate::hash::{Digests, Extra};
use crate::localfs::{self, Identity, Kind};
use crate::manifest::{Known, Location, MatchMode, Shared};
use crate::plan::RiskKind;
use crate::plan::{
    Artifact, Item, LocalDir, LocalFile, LocalLink, LocalRoot, Matched, MatchedBy, PlanLocation,
    Risk, Store, storage,
};
use crate::progress::{Phase, Progress};
use crate::store::Criteria;
use globset::GlobSet;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An artifact found in a local location.
#[allow(clippy::large_enum_variant)]
pub enum Found {
    File(LocalFile),
    Symlink(LocalLink),
    Dir(LocalDir),
}

impl Found {
    pub fn path(&self) -> &str {
        match self {
            Found::File(f) => &f.path,
            Found::Symlink(l) => &l.path,
            Found::Dir(d) => &d.path,
        }
    }
    pub fn into_item(self) -> Item {
        match self {
            Found::File(f) => Item::File(f),
            Found::Symlink(l) => Item::Symlink(l),
            Found::Dir(d) => Item::Dir(d),
        }
    }
}

/// Every name of a multiply-linked inode seen under any location.
#[derive(Default)]
pub struct LinkIndex {
    names: HashMap<(u64, u64), Vec<String>>,
}

impl LinkIndex {
    fn add(&mut self, id: &Identity, path: &str) {
        if id.nlink > 1 {
            self.names
                .entry((id.device, id.inode))
                .or_default()
                .push(path.to_string());
        }
    }

    /// Fill in `other_names` of planned files and report names that live
    /// outside every location (they keep the inode after our unlink).
    pub fn resolve(&self, artifacts: &mut [Artifact]) -> Vec<Risk> {
        let mut risks = Vec::new();
        let planned: HashSet<String> = artifacts
            .iter()
            .filter_map(|a| a.item.local_path().map(str::to_string))
            .collect();
        for a in artifacts.iter_mut() {
            let Item::File(f) = &mut a.item else { continue };
            if f.nlink <= 1 {
                continue;
            }
            let names = self
                .names
                .get(&(f.device, f.inode))
                .cloned()
                .unwrap_or_default();
            f.other_names = names.iter().filter(|n| **n != f.path).cloned().collect();
            let unplanned: Vec<&String> = f
                .other_names
                .iter()
                .filter(|n| !planned.contains(*n))
                .collect();
            let outside = f.nlink.saturating_sub(names.len() as u64);
            if outside > 0 {
                risks.push(Risk {
                    kind: RiskKind::HardLinkOutsideLocations,
                    subject: f.path.clone(),
                    detail: format!(
                        "{} of its {} names are outside every location: the overwrite reaches their data, but those names remain",
                        outside, f.nlink
                    ),
                });
            }
            if !unplanned.is_empty() {
                risks.push(Risk {
                    kind: RiskKind::HardLinkNotPlanned,
                    subject: f.path.clone(),
                    detail: format!(
                        "other names under the locations are not planned and will remain: {}",
                        unplanned
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        risks
    }
}

struct Candidate {
    path: PathBuf,
    id: Identity,
    matched: Matched,
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_string).ok_or_else(|| {
        Error::input(format!(
            "{}: path is not valid UTF-8; decom cannot record it",
            p.display()
        ))
    })
}

/// Walk one local location and select its artifacts: [`walk`] (one pass
/// over the tree, choosing candidates by name), [`hash_all`] (each
/// candidate read once, in parallel), [`select`] (keep what matches by
/// content and describe it). Directories whose whole subtree is planned go
/// too; every other directory is kept.
pub fn trace_location(
    index_no: u32,
    loc: &Location,
    root: &Path,
    criteria: &Criteria<'_>,
    (links, seen): (&mut LinkIndex, &mut Seen),
    progress: &dyn Progress,
) -> Result<(PlanLocation, Vec<Found>, Vec<Risk>)> {
    let anchor = localfs::Anchor::open(root, loc.cross_filesystems)?;
    let root_str = path_str(root)?;
    let root_dir = std::fs::File::open(root).at(root)?;
    let root_fs = localfs::fs_type(&root_dir).unwrap_or_else(|| "unknown".into());
    let root_rot = localfs::rotational(anchor.device());

    let hf_dir = criteria
        .model
        .hf_repo
        .as_ref()
        .map(|r| format!("models--{}", r.replace('/', "--")));
    // A location that is a repository folder (or lies in one), or lies in
    // an Ollama store's manifests/, is never "another" model's: its files
    // go as the location's match mode says, never kept from themselves.
    let hf_location = root
        .iter()
        .filter_map(|c| c.to_str())
        .find(|c| super::model_stores::is_hf_repo_name(c));
    let ollama = criteria
        .model
        .ollama_model
        .as_deref()
        .and_then(super::model_stores::OllamaName::parse);
    let ollama_under = root
        .ancestors()
        .find(|a| {
            a.file_name().is_some_and(|n| n == "manifests")
                && a.parent().is_some_and(|s| s.join("blobs").is_dir())
        })
        .map(|_| root);
    let ours = Ours {
        hf_dir: hf_dir.as_deref(),
        hf_location,
        ollama: ollama.as_ref(),
        ollama_under,
        torch_checkpoints: &criteria.model.torch_checkpoints,
    };
    let known = criteria.known();
    let mut w = walk(
        loc,
        root,
        anchor.device(),
        criteria,
        &ours,
        &known,
        links,
        progress,
    )?;
    let extra = known.extra();
    let hashed = hash_all(
        std::mem::take(&mut w.candidates),
        extra,
        w.stores.has_hf(),
        &loc.uri,
        progress,
    );
    let mut found = select(hashed, loc, criteria, &ours, &known, &mut w)?;
    w.stores.seen_models(seen);
    if std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none()) {
        w.risks.push(Risk {
            kind: RiskKind::EmptyLocation,
            subject: loc.uri.clone(),
            detail:
                "the location holds nothing: nothing is disposed of there, and its folder stays"
                    .into(),
        });
    }
    for (model, (n, bytes)) in std::mem::take(&mut w.others) {
        w.risks.push(Risk {
            kind: RiskKind::OtherModel,
            subject: model,
            detail: format!(
                "{n} file(s), {} in {} are this other model's own store entries: kept, not planned",
                crate::util::human_bytes(bytes),
                loc.uri
            ),
        });
    }
    found.extend(w.links.drain(..).map(Found::Symlink));
    for (d, id) in std::mem::take(&mut w.dirs) {
        if !w.kept.contains(&d) {
            found.push(Found::Dir(LocalDir {
                path: path_str(&d)?,
                device: id.device,
                inode: id.inode,
            }));
        }
    }
    let plan_loc = PlanLocation {
        index: index_no,
        uri: loc.uri.clone(),
        host: None,
        match_mode: loc.match_mode,
        store: Store::Local(LocalRoot {
            root: root_str,
            device: anchor.device(),
            inode: anchor.inode()?,
            fs_type: root_fs,
            rotational: root_rot,
            cross_filesystems: loc.cross_filesystems,
            virtual_disk: localfs::virtual_disk(anchor.device()),
        }),
    };
    Ok((plan_loc, found, w.risks))
}

/// What one walk of a location found.
struct Walked {
    root: PathBuf,
    /// Files chosen by name, to be hashed.
    candidates: Vec<Candidate>,
    /// Symbolic links planned (never followed).
    links: Vec<LocalLink>,
    dirs: Vec<(PathBuf, Identity)>,
    /// Directories that keep something (so they are not removed).
    kept: HashSet<PathBuf>,
    risks: Vec<Risk>,
    /// The model stores met on the way.
    stores: Stores,
    /// Other models' own store entries met and kept: files and bytes each.
    others: std::collections::BTreeMap<String, (u64, u64)>,
}

impl Walked {
    /// `p` stays, and so does every directory above it up to the root.
    fn keep(&mut self, p: &Path) {
        let mut cur = p.parent();
        while let Some(d) = cur {
            if !self.kept.insert(d.to_path_buf()) || d == self.root {
                break;
            }
            cur = d.parent();
        }
    }

    fn unreadable(&mut self, p: &Path, detail: String) {
        self.risk(RiskKind::Unreadable, p, detail);
    }

    fn risk(&mut self, kind: RiskKind, p: &Path, detail: String) {
        self.risks.push(Risk {
            kind,
            subject: p.display().to_string(),
            detail,
        });
    }

    /// Read the index of a store starting at `dir`, reporting what failed
    /// (`above`: a folder above the root, which the walk never meets).
    fn enter(&mut self, dir: &Path, above: bool) {
        let problems = if above {
            self.stores.enter_above(dir)
        } else {
            self.stores.enter(dir)
        };
        for (p, e) in problems {
            self.unreadable(&p, e);
        }
    }
}

/// Walk the tree once (never following links, not crossing filesystems
/// unless allowed) and choose files, links and directories by name: the
/// exclude and include globs, the match mode, the model's own store
/// entries, `[[keep]]` folders, and the size prefilter of a hash location.
#[allow(clippy::too_many_arguments)]
fn walk(
    loc: &Location,
    root: &Path,
    device: u64,
    criteria: &Criteria<'_>,
    ours: &Ours<'_>,
    known: &Known,
    links: &mut LinkIndex,
    progress: &dyn Progress,
) -> Result<Walked> {
    let rules = Rules {
        loc,
        root,
        device,
        criteria,
        ours,
        known,
        include: crate::manifest::globset(&loc.include, &loc.uri)?,
        exclude: crate::manifest::globset(&loc.exclude, &loc.uri)?,
    };
    let mut w = Walked {
        root: root.to_path_buf(),
        candidates: Vec::new(),
        links: Vec::new(),
        dirs: Vec::new(),
        kept: HashSet::new(),
        risks: Vec::new(),
        stores: Stores::default(),
        others: Default::default(),
    };
    // A location inside a store (one repository, an Ollama `blobs/`)
    // still knows the store.
    let mut above: Vec<&Path> = root.ancestors().collect();
    above.reverse();
    for a in above {
        w.enter(a, true);
    }

    progress.start(Phase::Walk(&loc.uri), 0, 0);
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(!loc.cross_filesystems)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                w.unreadable(&p, format!("could not be traced: {e}"));
                w.keep(&p.join("x"));
                continue;
            }
        };
        match w.passed_over(&rules, &entry) {
            Some(Pass::Entry) => continue,
            Some(Pass::Folder) => {
                walker.skip_current_dir();
                continue;
            }
            None => {}
        }
        w.entry(&rules, &entry, links)?;
    }
    progress.finish();
    Ok(w)
}

/// What decides a walk's choices, fixed for the location.
struct Rules<'a> {
    loc: &'a Location,
    root: &'a Path,
    device: u64,
    criteria: &'a Criteria<'a>,
    ours: &'a Ours<'a>,
    known: &'a Known,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

/// An entry the walk passes over: itself, or the whole folder.
enum Pass {
    Entry,
    Folder,
}

impl Walked {
    /// Entries never planned whatever they hold: names a plan cannot show,
    /// excluded globs, decom's own files, `[[keep]]` folders.
    fn passed_over(&mut self, r: &Rules<'_>, entry: &walkdir::DirEntry) -> Option<Pass> {
        let path = entry.path();
        let rel = path
            .strip_prefix(r.root)
            .expect("walkdir yields paths under its root");
        let folder = if entry.file_type().is_dir() {
            Pass::Folder
        } else {
            Pass::Entry
        };
        if std::os::unix::ffi::OsStrExt::as_bytes(entry.file_name()).contains(&b'\n') {
            // A plan shows one path a line: a newline in a name could
            // make `show` and the confirmation lie. Reported, not planned.
            self.risks.push(Risk {
                kind: RiskKind::UnrecordableName,
                subject: format!("{:?}", path.display().to_string()),
                detail: "its name holds a newline, which a plan cannot show unambiguously: not planned, and it stays; rename it and trace again".into(),
            });
            self.keep(path);
            return Some(folder);
        }
        if r.exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
            self.keep(path);
            return Some(Pass::Entry);
        }
        if r.criteria.own_files.iter().any(|f| f == path) {
            self.risk(
                RiskKind::DecomOwnFile,
                path,
                "decom's own input or output (the manifest or a file it names, the plan, the decom binary): excluded, never planned".into(),
            );
            self.keep(path);
            return Some(Pass::Entry);
        }
        if r.criteria.keep.iter().any(|k| path.starts_with(k)) {
            // A folder of a model that stays: never planned, never entered.
            self.keep(path);
            return Some(folder);
        }
        None
    }

    /// Choose one entry by its kind, the model stores and the location's
    /// rules: a candidate file, a planned link, a folder, or kept.
    fn entry(
        &mut self,
        r: &Rules<'_>,
        entry: &walkdir::DirEntry,
        links: &mut LinkIndex,
    ) -> Result<()> {
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.unreadable(path, e.to_string());
                self.keep(path);
                return Ok(());
            }
        };
        let id = localfs::identity_of(&meta);
        if id.kind == Kind::File
            && let Some(why) = self.stores.unvalidated(path)
        {
            self.risk(RiskKind::UnvalidatedReference, path, why);
            self.keep(path);
            return Ok(());
        }
        let own = match id.kind {
            Kind::File | Kind::Symlink => self.stores.own(path, r.ours),
            _ => None,
        };
        if own == Some(Own::HfShared) && path.extension().is_some_and(|e| e == "refs") {
            // The manifest of a payload that stays: huggingface_hub's own
            // deletion rewrites it without the retired repository's line;
            // decom leaves the line, which its tools skip (the link is gone).
            self.risk(
                RiskKind::StoreReferenceKept,
                path,
                format!(
                    "kept with the payload other repositories use; it still lists {}'s link, which huggingface_hub ignores once the link is gone and drops at its next sweep (hf cache prune)",
                    r.ours.hf_dir.unwrap_or("the retired repository")
                ),
            );
            self.keep(path);
            return Ok(());
        }
        match id.kind {
            Kind::Dir => {
                if id.device != r.device && !r.loc.cross_filesystems {
                    self.keep(path);
                } else {
                    self.enter(path, false);
                    self.dirs.push((path.to_path_buf(), id));
                }
            }
            Kind::File => {
                links.add(&id, &path_str(path)?);
                match self.file_how(r, path, own, id.size) {
                    Some((how, pattern)) => self.candidates.push(Candidate {
                        path: path.to_path_buf(),
                        id,
                        matched: Matched {
                            how,
                            pattern,
                            component: None,
                        },
                    }),
                    None => self.keep(path),
                }
            }
            Kind::Symlink => self.symlink(r, path, own == Some(Own::HfRepo), &id)?,
            Kind::Other => self.special_file(path, &meta),
        }
        Ok(())
    }

    /// How a file is chosen by name, if it is: the model's own store
    /// entry, an include glob, the size of a known component (hash
    /// locations), or everything.
    fn file_how(
        &mut self,
        r: &Rules<'_>,
        path: &Path,
        own: Option<Own>,
        size: u64,
    ) -> Option<(MatchedBy, Option<String>)> {
        let rel = path.strip_prefix(r.root).unwrap_or(path);
        let included = r.include.as_ref().is_none_or(|g| g.is_match(rel));
        if own.is_none() && included && r.ours.ollama_under.is_some() {
            self.note_layers_outside(r, path);
        }
        match own {
            Some(Own::HfRepo | Own::HfShared) => {
                Some((MatchedBy::HfRepo, r.ours.hf_dir.map(str::to_string)))
            }
            Some(Own::Ollama | Own::OllamaShared(_)) => {
                self.note_layers_outside(r, path);
                Some((MatchedBy::Ollama, r.ours.ollama.map(|n| n.to_string())))
            }
            Some(Own::TorchHub) => Some((MatchedBy::TorchHub, None)),
            None if !included => None,
            None if r.loc.match_mode == MatchMode::Hash => r
                .known
                .size_may_match(size)
                .then_some((MatchedBy::Hash, None)),
            None => Some(match &r.include {
                // The first pattern that matches (GlobSet keeps their order).
                Some(set) => (
                    MatchedBy::Include,
                    set.matches(rel)
                        .first()
                        .and_then(|i| r.loc.include.get(*i))
                        .cloned(),
                ),
                None => (MatchedBy::All, None),
            }),
        }
    }

    /// An Ollama manifest whose layers only this model uses lie outside
    /// the location: they stay, and the plan says so.
    fn note_layers_outside(&mut self, r: &Rules<'_>, path: &Path) {
        let outside = self.stores.ollama_layers_outside(path, r.ours, r.root);
        if outside.is_empty() {
            return;
        }
        let list: Vec<String> = outside.iter().map(|p| p.display().to_string()).collect();
        self.risk(
            RiskKind::StoreOutsideLocation,
            path,
            format!(
                "the layers only this model uses lie outside this location and stay: {}; add the store folder as a location",
                list.join(", ")
            ),
        );
    }

    /// A symbolic link: planned (never followed) when it is the model's own
    /// or, in a `match = "all"` location, no other model needs it.
    fn symlink(&mut self, r: &Rules<'_>, path: &Path, own: bool, id: &Identity) -> Result<()> {
        let rel = path.strip_prefix(r.root).unwrap_or(path);
        let included = r.include.as_ref().is_none_or(|g| g.is_match(rel));
        let take = own
            || (r.loc.match_mode == MatchMode::All
                && included
                && self.stores.needed_by(path, r.ours).is_empty());
        if !take {
            self.keep(path);
            return Ok(());
        }
        if let Some(payload) = self.stores.payload_behind(path)
            && !payload.starts_with(r.root)
        {
            let why = format!(
                "its bytes are in the hub's shared blob store at {}, outside this location: removing the link leaves them; add the hub folder as a location",
                payload.display()
            );
            self.risk(RiskKind::StoreOutsideLocation, path, why);
        }
        let target = std::fs::read_link(path).at(path)?;
        self.links.push(LocalLink {
            path: path_str(path)?,
            device: id.device,
            inode: id.inode,
            target: target.to_string_lossy().into_owned(),
        });
        Ok(())
    }

    /// A FIFO, socket or device node: accounted for, never silently left
    /// behind a COMPLETE.
    fn special_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() {
            "a block device node"
        } else if t.is_char_device() {
            "a character device node"
        } else {
            "not a regular file, directory or link"
        };
        self.risk(
            RiskKind::SpecialFile,
            path,
            format!("{what}: decom does not dispose of it, and it stays"),
        );
        self.keep(path);
    }
}

/// Sparse files from this size on get a note (a pass fills their holes).
const SPARSE_NOTE_MIN: u64 = 1 << 20;

/// Files this large are always LFS files on the Hugging Face Hub (named by
/// SHA-256); only smaller ones get the git blob hash too.
const GIT_BLOB_MAX: u64 = 10 << 20;

/// What reading a candidate once told.
struct Hashed {
    digests: Digests,
    fs_type: String,
    /// Bytes whose blocks another file or snapshot shares (FIEMAP).
    shared_bytes: Option<u64>,
    /// Bytes the filesystem has allocated to it (a sparse file has fewer
    /// than its size).
    allocated: u64,
    /// What decom file it is by its first bytes (a key, a signature, a
    /// plan, a certificate, a journal, a trusted signers file), if any.
    decom_file: Option<&'static str>,
}

/// What decom's own inputs and outputs look like from their first bytes:
/// keys and trusted signers files are not named to trace, so they are
/// known by content and never planned, wherever a location finds them.
/// Bytes are compared as bytes (a model file's head is not text): this runs
/// for every file a location hashes.
fn decom_file(head: &[u8]) -> Option<&'static str> {
    use memchr::memmem;
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let t = &head[start..];
    let near = &t[..t.len().min(256)];
    if t.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
        Some("an OpenSSH private key (a signing key)")
    } else if t.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        Some("an SSH signature (an approval or a certificate signature)")
    } else if t.starts_with(b"ssh-ed25519 ") {
        Some("an SSH public key")
    } else if t.starts_with(b"{") && memmem::find(near, b"\"schema\": \"decom.plan/").is_some() {
        Some("a decom plan")
    } else if t.starts_with(b"{")
        && memmem::find(near, b"\"schema\": \"decom.certificate/").is_some()
    {
        Some("a decom certificate")
    } else if t.starts_with(b"{\"seq\":1,")
        && memmem::find(near, b"\"type\":\"run-started\"").is_some()
    {
        Some("a decom journal")
    } else if !t.contains(&0)
        && (memmem::find(t, b"namespaces=\"decom-custodian\"").is_some()
            || memmem::find(t, b"namespaces=\"decom-operator\"").is_some())
    {
        Some("a decom trusted signers file")
    } else {
        None
    }
}

/// Hash the candidates in parallel on all cores, each read once: SHA-256,
/// the `extra` digests known components need, and the git blob SHA-1 where
/// a Hugging Face cache names small files by it.
fn hash_all(
    candidates: Vec<Candidate>,
    extra: Extra,
    git_blob: bool,
    uri: &str,
    progress: &dyn Progress,
) -> Vec<(Candidate, Result<Hashed>)> {
    let total: u64 = candidates.iter().map(|c| c.id.size).sum();
    progress.start(Phase::Hash(uri), candidates.len() as u64, total);
    let hashed = candidates
        .into_par_iter()
        .map(|c| {
            // The Hub stores files of 10 MiB and more with LFS, named by
            // SHA-256: only smaller ones can be named by their git hash.
            let extra = Extra {
                git_blob: (git_blob && c.id.size < GIT_BLOB_MAX).then_some(c.id.size),
                ..extra
            };
            let r = hash_candidate(&c, extra, progress);
            (c, r)
        })
        .collect();
    progress.finish();
    hashed
}

/// Keep the hashed candidates that match (in a hash location: only known
/// component hashes) and describe each as a planned file; the rest stay.
/// Content another model's store needs stays too, unless the location
/// says `shared = "dispose"`; identical bytes left in other stores and
/// blocks shared with other files are residual risks.
fn select(
    hashed: Vec<(Candidate, Result<Hashed>)>,
    loc: &Location,
    criteria: &Criteria<'_>,
    ours: &Ours<'_>,
    known: &Known,
    w: &mut Walked,
) -> Result<Vec<Found>> {
    let mut rot_cache: HashMap<u64, (Option<bool>, Option<String>)> = HashMap::new();
    let writers = localfs::open_for_writing();
    let mut found = Vec::new();
    for (c, r) in hashed {
        let h = match r {
            Ok(v) => v,
            Err(e) => {
                w.unreadable(&c.path, e.to_string());
                w.keep(&c.path);
                continue;
            }
        };
        if let Some(what) = h.decom_file {
            w.risk(
                RiskKind::DecomOwnFile,
                &c.path,
                format!("{what}: decom's own inputs and evidence are never planned (excluded); dispose of it by other means if it is not decom's"),
            );
            w.keep(&c.path);
            continue;
        }
        let component = known.find(&h.digests).map(str::to_string);
        if c.matched.how == MatchedBy::Hash && component.is_none() {
            w.keep(&c.path);
            continue;
        }
        let needed_by = w.stores.needed_by(&c.path, ours);
        if !needed_by.is_empty()
            && component.is_none()
            && matches!(c.matched.how, MatchedBy::All | MatchedBy::Include)
        {
            // Another model's own entry, which shares nothing with ours.
            let e = w.others.entry(needed_by.join(", ")).or_default();
            e.0 += 1;
            e.1 += c.id.size;
            w.keep(&c.path);
            continue;
        }
        if w.shared_kept(&c.path, &needed_by, component.as_deref(), loc.shared) {
            continue;
        }
        w.note_file(&c, &h, ours, writers.get(&(c.id.device, c.id.inode)));
        let mut matched = c.matched;
        matched.component = component;
        let (rotational, virt) = rot_cache
            .entry(c.id.device)
            .or_insert_with(|| {
                (
                    localfs::rotational(c.id.device),
                    localfs::virtual_disk(c.id.device),
                )
            })
            .clone();
        found.push(Found::File(LocalFile {
            path: path_str(&c.path)?,
            device: c.id.device,
            inode: c.id.inode,
            nlink: c.id.nlink,
            size: c.id.size,
            mtime: c.id.mtime,
            ctime: c.id.ctime,
            sha256: h.digests.sha256,
            sanitization: storage::classify(
                &h.fs_type,
                rotational,
                virt.as_deref(),
                criteria.overwrites,
            ),
            fs_type: h.fs_type,
            rotational,
            matched,
            other_names: Vec::new(),
        }));
    }
    Ok(found)
}

impl Walked {
    /// Content another model's store needs: kept with a `shared-content`
    /// risk (true), or, where the location says `shared = "dispose"`,
    /// planned with the links and manifests that will point at nothing.
    fn shared_kept(
        &mut self,
        path: &Path,
        needed_by: &[String],
        component: Option<&str>,
        shared: Shared,
    ) -> bool {
        if needed_by.is_empty() {
            return false;
        }
        let users = needed_by.join(", ");
        let what = component
            .map(|n| format!("matches component {n}, but "))
            .unwrap_or_default();
        if shared == Shared::Keep {
            self.risk(
                RiskKind::SharedContent,
                path,
                format!(
                    "{what}identical bytes kept: needed by {users}; set shared = \"dispose\" on the location to dispose of it anyway"
                ),
            );
            self.keep(path);
            return true;
        }
        let broken: Vec<String> = self
            .stores
            .dependents(path)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        self.risk(
            RiskKind::SharedContentDisposed,
            path,
            format!(
                "{what}needed by {users}; disposed of as the location says (shared = \"dispose\"); these will point at nothing: {}",
                if broken.is_empty() {
                    "(no link or manifest known)".to_string()
                } else {
                    broken.join(", ")
                }
            ),
        );
        false
    }

    /// The residual risks of a file that is planned: identical bytes that
    /// stay elsewhere, blocks shared with a copy, a sparse file written in
    /// full, another process writing into it (`writers`).
    fn note_file(
        &mut self,
        c: &Candidate,
        h: &Hashed,
        ours: &Ours<'_>,
        writers: Option<&Vec<String>>,
    ) {
        for (model, p) in self.stores.identical(&h.digests, &c.path, ours) {
            self.risk(
                RiskKind::SharedContent,
                &c.path,
                format!("identical bytes kept: needed by {model} ({})", p.display()),
            );
        }
        if let Some(n) = h.shared_bytes.filter(|n| *n > 0) {
            self.risk(
                RiskKind::SharedExtents,
                &c.path,
                format!(
                    "{} of its {} share their blocks with another file or a snapshot (a reflinked copy): overwriting this file does not reach them, and the other copy keeps the bytes",
                    crate::util::human_bytes(n.min(c.id.size)),
                    crate::util::human_bytes(c.id.size)
                ),
            );
        }
        if c.id.size >= SPARSE_NOTE_MIN && h.allocated < c.id.size / 2 {
            self.risk(
                RiskKind::SparseFile,
                &c.path,
                format!(
                    "sparse: {} apparent size, {} allocated; each pass writes all {} (the holes are filled, so the disk needs the space and the time)",
                    crate::util::human_bytes(c.id.size),
                    crate::util::human_bytes(h.allocated),
                    crate::util::human_bytes(c.id.size)
                ),
            );
        }
        if let Some(who) = writers {
            self.risk(
                RiskKind::OpenForWriting,
                &c.path,
                format!(
                    "held open for writing by {}: it can go on writing into the file after its disposal; execute skips it unless the location says allow_open_files = true",
                    who.join(", ")
                ),
            );
        }
    }
}

/// Open without following links, check it is still the file the walk saw,
/// and hash it; ask the filesystem which of its blocks are shared.
fn hash_candidate(c: &Candidate, extra: Extra, progress: &dyn Progress) -> Result<Hashed> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(&c.path)
        .at(&c.path)?;
    let meta = f.metadata().at(&c.path)?;
    let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
    let now = localfs::identity_of(&meta);
    if now.kind != Kind::File
        || now.device != c.id.device
        || now.inode != c.id.inode
        || now.size != c.id.size
    {
        return Err(Error::io(
            &c.path,
            std::io::Error::other("changed while tracing"),
        ));
    }
    let fs_type = localfs::fs_type(&f).unwrap_or_else(|| "unknown".into());
    let (digests, n) =
        crate::hash::digest_reader(&f, extra, None, |n| progress.bytes(n)).at(&c.path)?;
    if n != c.id.size {
        return Err(Error::io(
            &c.path,
            std::io::Error::other("size changed while tracing"),
        ));
    }
    let mut head = [0u8; 4096];
    let n = std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).at(&c.path)?;
    let shared_bytes = localfs::shared_bytes(&f);
    progress.item(&c.path.display().to_string());
    Ok(Hashed {
        digests,
        fs_type,
        shared_bytes,
        allocated,
        decom_file: decom_file(&head[..n]),
    })
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY)
        .bits() as i32
}
