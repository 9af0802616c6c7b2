//! Tracing a local location in three steps: one walk (walkdir, never
//! following links, not crossing filesystems unless allowed) that chooses
//! candidates by match mode, include and exclude globs and the Hugging Face
//! cache layout; hashing of the candidates in parallel on all cores, each
//! file read once; and the selection by content.
//!
//! In `match = "hash"` locations only files whose size equals a known
//! component's size are read (when every component's size is known).

use super::Criteria;
use crate::error::{Error, IoContext, Result};
use crate::localfs::{self, Identity, Kind};
use crate::manifest::{Location, MatchMode};
use crate::plan::{
    Artifact, Item, LocalDir, LocalFile, LocalLink, LocalRoot, Matched, MatchedBy, PlanLocation,
    Risk, Store, storage,
};
use crate::progress::{Phase, Progress};
use globset::{Glob, GlobSet, GlobSetBuilder};
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
                    kind: "hard-link-outside-locations".into(),
                    subject: f.path.clone(),
                    detail: format!(
                        "{} of its {} names are outside every location: the overwrite reaches their data, but those names remain",
                        outside, f.nlink
                    ),
                });
            }
            if !unplanned.is_empty() {
                risks.push(Risk {
                    kind: "hard-link-not-planned".into(),
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

fn globset(globs: &[String], uri: &str) -> Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(
            Glob::new(g)
                .map_err(|e| Error::input(format!("location {uri}: bad glob {g:?}: {e}")))?,
        );
    }
    Ok(Some(b.build().map_err(|e| {
        Error::input(format!("location {uri}: {e}"))
    })?))
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
    links: &mut LinkIndex,
    progress: &dyn Progress,
) -> Result<(PlanLocation, Vec<Found>, Vec<Risk>)> {
    let anchor = localfs::Anchor::open(root, loc.cross_filesystems)?;
    let root_str = path_str(root)?;
    let root_dir = std::fs::File::open(root).at(root)?;
    let root_fs = localfs::fs_type(&root_dir).unwrap_or_else(|| "unknown".into());
    let root_rot = localfs::rotational(anchor.device());

    let mut w = walk(loc, root, anchor.device(), criteria, links, progress)?;
    let hashed = hash_all(std::mem::take(&mut w.candidates), &loc.uri, progress);
    let mut found = select(hashed, criteria, &mut w)?;
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
        match_mode: loc.match_mode,
        store: Store::Local(LocalRoot {
            root: root_str,
            device: anchor.device(),
            inode: anchor.inode()?,
            fs_type: root_fs,
            rotational: root_rot,
            cross_filesystems: loc.cross_filesystems,
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
        self.risks.push(Risk {
            kind: "unreadable".into(),
            subject: p.display().to_string(),
            detail,
        });
    }
}

/// Walk the tree once (never following links, not crossing filesystems
/// unless allowed) and choose files, links and directories by name: the
/// exclude and include globs, the match mode, the Hugging Face layout, and
/// the size prefilter of a hash location.
fn walk(
    loc: &Location,
    root: &Path,
    device: u64,
    criteria: &Criteria<'_>,
    links: &mut LinkIndex,
    progress: &dyn Progress,
) -> Result<Walked> {
    let include = globset(&loc.include, &loc.uri)?;
    let exclude = globset(&loc.exclude, &loc.uri)?;
    let hf_dir = criteria
        .hf_repo
        .map(|r| format!("models--{}", r.replace('/', "--")));
    let sizes: Option<HashSet<u64>> = if criteria.components.iter().all(|c| c.size.is_some()) {
        Some(criteria.components.iter().filter_map(|c| c.size).collect())
    } else {
        None
    };
    let mut w = Walked {
        root: root.to_path_buf(),
        candidates: Vec::new(),
        links: Vec::new(),
        dirs: Vec::new(),
        kept: HashSet::new(),
        risks: Vec::new(),
    };

    progress.start(Phase::Walk(&loc.uri), 0, 0);
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(!loc.cross_filesystems)
        .sort_by_file_name()
        .min_depth(1);
    for entry in walker {
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
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        if exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
            w.keep(path);
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                w.unreadable(path, e.to_string());
                w.keep(path);
                continue;
            }
        };
        let id = localfs::identity_of(&meta);
        let in_hf = hf_dir
            .as_ref()
            .is_some_and(|h| rel.components().any(|c| c.as_os_str() == h.as_str()));
        let included = include.as_ref().is_none_or(|g| g.is_match(rel));
        match id.kind {
            Kind::Dir => {
                if id.device != device && !loc.cross_filesystems {
                    w.keep(path);
                } else {
                    w.dirs.push((path.to_path_buf(), id));
                }
            }
            Kind::File => {
                let p = path_str(path)?;
                links.add(&id, &p);
                let how = if in_hf {
                    Some((MatchedBy::HfRepo, hf_dir.clone()))
                } else if !included {
                    None
                } else if loc.match_mode == MatchMode::Hash {
                    let size_ok = sizes.as_ref().is_none_or(|s| s.contains(&id.size));
                    size_ok.then_some((MatchedBy::Hash, None))
                } else if let Some(set) = &include {
                    // The first pattern that matches (GlobSet keeps their order).
                    let pattern = set.matches(rel).first().and_then(|i| loc.include.get(*i));
                    Some((MatchedBy::Include, pattern.cloned()))
                } else {
                    Some((MatchedBy::All, None))
                };
                match how {
                    Some((how, pattern)) => w.candidates.push(Candidate {
                        path: path.to_path_buf(),
                        id,
                        matched: Matched {
                            how,
                            pattern,
                            component: None,
                        },
                    }),
                    None => w.keep(path),
                }
            }
            Kind::Symlink => {
                let take = in_hf || (loc.match_mode == MatchMode::All && included);
                if take {
                    let target = std::fs::read_link(path).at(path)?;
                    w.links.push(LocalLink {
                        path: path_str(path)?,
                        device: id.device,
                        inode: id.inode,
                        target: target.to_string_lossy().into_owned(),
                    });
                } else {
                    w.keep(path);
                }
            }
            Kind::Other => w.keep(path),
        }
    }
    progress.finish();
    Ok(w)
}

/// Hash the candidates in parallel on all cores, each read once.
fn hash_all(
    candidates: Vec<Candidate>,
    uri: &str,
    progress: &dyn Progress,
) -> Vec<(Candidate, Result<(String, String)>)> {
    let total: u64 = candidates.iter().map(|c| c.id.size).sum();
    progress.start(Phase::Hash(uri), candidates.len() as u64, total);
    let hashed = candidates
        .into_par_iter()
        .map(|c| {
            let r = hash_candidate(&c, progress);
            (c, r)
        })
        .collect();
    progress.finish();
    hashed
}

/// Keep the hashed candidates that match (in a hash location: only known
/// component hashes) and describe each as a planned file; the rest stay.
fn select(
    hashed: Vec<(Candidate, Result<(String, String)>)>,
    criteria: &Criteria<'_>,
    w: &mut Walked,
) -> Result<Vec<Found>> {
    let known: HashMap<&str, &str> = criteria
        .components
        .iter()
        .map(|c| (c.sha256.as_str(), c.name.as_str()))
        .collect();
    let mut rot_cache: HashMap<u64, Option<bool>> = HashMap::new();
    let mut found = Vec::new();
    for (c, r) in hashed {
        let (sha, fs_type) = match r {
            Ok(v) => v,
            Err(e) => {
                w.unreadable(&c.path, e.to_string());
                w.keep(&c.path);
                continue;
            }
        };
        let mut matched = c.matched;
        let component = known.get(sha.as_str()).map(|s| s.to_string());
        if matched.how == MatchedBy::Hash && component.is_none() {
            w.keep(&c.path);
            continue;
        }
        matched.component = component;
        let rotational = *rot_cache
            .entry(c.id.device)
            .or_insert_with(|| localfs::rotational(c.id.device));
        found.push(Found::File(LocalFile {
            path: path_str(&c.path)?,
            device: c.id.device,
            inode: c.id.inode,
            nlink: c.id.nlink,
            size: c.id.size,
            mtime: c.id.mtime,
            ctime: c.id.ctime,
            sha256: sha,
            sanitization: storage::classify(&fs_type, rotational, criteria.overwrites),
            fs_type,
            rotational,
            matched,
            other_names: Vec::new(),
        }));
    }
    Ok(found)
}

/// Open without following links, check it is still the file the walk saw,
/// and hash it. Returns (sha256, filesystem type).
fn hash_candidate(c: &Candidate, progress: &dyn Progress) -> Result<(String, String)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(&c.path)
        .at(&c.path)?;
    let now = localfs::identity_of(&f.metadata().at(&c.path)?);
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
    let (sha, n) = crate::hash::hash_reader(&f, None, |n| progress.bytes(n)).at(&c.path)?;
    if n != c.id.size {
        return Err(Error::io(
            &c.path,
            std::io::Error::other("size changed while tracing"),
        ));
    }
    progress.item(&c.path.display().to_string());
    Ok((sha, fs_type))
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY)
        .bits() as i32
}
