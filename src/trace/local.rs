//! Tracing a local location: one walk (walkdir, never following links, not
//! crossing filesystems unless allowed), selection by match mode, include and
//! exclude globs and the Hugging Face cache layout, then hashing of the
//! selected files in parallel on all cores, each file read once.
//!
//! In `match = "hash"` locations only files whose size equals a known
//! component's size are read (when every component's size is known).

use crate::error::{Error, IoContext, Result};
use crate::localfs::{self, Identity, Kind};
use crate::manifest::{Location, MatchMode, Resolved};
use crate::plan::{
    Artifact, Item, LocalDir, LocalFile, LocalLink, LocalRoot, Matched, PlanLocation, Risk, Store,
    storage,
};
use crate::progress::Progress;
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

/// Walk one local location and select its artifacts.
pub fn trace_location(
    index_no: u32,
    loc: &Location,
    root: &Path,
    resolved: &Resolved,
    links: &mut LinkIndex,
    progress: &dyn Progress,
) -> Result<(PlanLocation, Vec<Found>, Vec<Risk>)> {
    let anchor = localfs::Anchor::open(root, loc.cross_filesystems)?;
    let root_str = path_str(root)?;
    let root_dir = std::fs::File::open(root).at(root)?;
    let root_fs = localfs::fs_type(&root_dir).unwrap_or_else(|| "unknown".into());
    let root_rot = localfs::rotational(anchor.device());
    let include = globset(&loc.include, &loc.uri)?;
    let exclude = globset(&loc.exclude, &loc.uri)?;
    let hf_dir = resolved
        .manifest
        .model
        .hf_repo
        .as_ref()
        .map(|r| format!("models--{}", r.replace('/', "--")));
    let known: HashMap<&str, &str> = resolved
        .components
        .iter()
        .map(|c| (c.sha256.as_str(), c.name.as_str()))
        .collect();
    let sizes: Option<HashSet<u64>> = if resolved.components.iter().all(|c| c.size.is_some()) {
        Some(resolved.components.iter().filter_map(|c| c.size).collect())
    } else {
        None
    };

    let mut risks = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut planned_links: Vec<LocalLink> = Vec::new();
    let mut dirs: Vec<(PathBuf, Identity)> = Vec::new();
    // Directories that keep something (so they are not removed).
    let mut kept: HashSet<PathBuf> = HashSet::new();
    let keep = |kept: &mut HashSet<PathBuf>, p: &Path| {
        let mut cur = p.parent();
        while let Some(d) = cur {
            if !kept.insert(d.to_path_buf()) || d == root {
                break;
            }
            cur = d.parent();
        }
    };

    progress.start(&format!("walk {}", loc.uri), 0, 0);
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
                risks.push(Risk {
                    kind: "unreadable".into(),
                    subject: p.display().to_string(),
                    detail: format!("could not be traced: {e}"),
                });
                keep(&mut kept, &p.join("x"));
                continue;
            }
        };
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        if exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
            keep(&mut kept, path);
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                risks.push(Risk {
                    kind: "unreadable".into(),
                    subject: path.display().to_string(),
                    detail: e.to_string(),
                });
                keep(&mut kept, path);
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
                if id.device != anchor.device() && !loc.cross_filesystems {
                    keep(&mut kept, path);
                } else {
                    dirs.push((path.to_path_buf(), id));
                }
            }
            Kind::File => {
                let p = path_str(path)?;
                links.add(&id, &p);
                let matched = if in_hf {
                    Some(Matched {
                        how: "hf-repo".into(),
                        pattern: hf_dir.clone(),
                        component: None,
                    })
                } else if !included {
                    None
                } else if loc.match_mode == MatchMode::Hash {
                    let size_ok = sizes.as_ref().is_none_or(|s| s.contains(&id.size));
                    size_ok.then(|| Matched {
                        how: "hash".into(),
                        pattern: None,
                        component: None,
                    })
                } else if let Some(set) = &include {
                    // The first pattern that matches (GlobSet keeps their order).
                    let pattern = set.matches(rel).first().and_then(|i| loc.include.get(*i));
                    Some(Matched {
                        how: "include".into(),
                        pattern: pattern.cloned(),
                        component: None,
                    })
                } else {
                    Some(Matched {
                        how: "all".into(),
                        pattern: None,
                        component: None,
                    })
                };
                match matched {
                    Some(matched) => candidates.push(Candidate {
                        path: path.to_path_buf(),
                        id,
                        matched,
                    }),
                    None => keep(&mut kept, path),
                }
            }
            Kind::Symlink => {
                let take = in_hf || (loc.match_mode == MatchMode::All && included);
                if take {
                    let target = std::fs::read_link(path).at(path)?;
                    planned_links.push(LocalLink {
                        path: path_str(path)?,
                        device: id.device,
                        inode: id.inode,
                        target: target.to_string_lossy().into_owned(),
                    });
                } else {
                    keep(&mut kept, path);
                }
            }
            Kind::Other => keep(&mut kept, path),
        }
    }
    progress.finish();

    // Hash the candidates in parallel, each read once.
    let total: u64 = candidates.iter().map(|c| c.id.size).sum();
    progress.start(&format!("hash {}", loc.uri), candidates.len() as u64, total);
    let hashed: Vec<(Candidate, Result<(String, String)>)> = candidates
        .into_par_iter()
        .map(|c| {
            let r = hash_candidate(&c, progress);
            (c, r)
        })
        .collect();
    progress.finish();

    let overwrites = !resolved.profile.passes.is_empty();
    let mut rot_cache: HashMap<u64, Option<bool>> = HashMap::new();
    let mut found = Vec::new();
    for (c, r) in hashed {
        let (sha, fs_type) = match r {
            Ok(v) => v,
            Err(e) => {
                risks.push(Risk {
                    kind: "unreadable".into(),
                    subject: c.path.display().to_string(),
                    detail: e.to_string(),
                });
                keep(&mut kept, &c.path);
                continue;
            }
        };
        let mut matched = c.matched;
        let component = known.get(sha.as_str()).map(|s| s.to_string());
        if matched.how == "hash" {
            match component {
                Some(name) => matched.component = Some(name),
                None => {
                    keep(&mut kept, &c.path);
                    continue;
                }
            }
        } else {
            matched.component = component;
        }
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
            sanitization: storage::classify(&fs_type, rotational, overwrites),
            fs_type,
            rotational,
            matched,
            other_names: Vec::new(),
        }));
    }
    found.extend(planned_links.into_iter().map(Found::Symlink));
    // Directories whose whole subtree is planned go too (children first at execute).
    for (d, id) in dirs {
        if !kept.contains(&d) {
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
    Ok((plan_loc, found, risks))
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
