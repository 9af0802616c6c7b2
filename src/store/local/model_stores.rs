//! Model stores decom recognises inside a local location, and which model
//! needs which bytes there. Three layouts, as their own tools write them:
//!
//! - the **Hugging Face hub cache** (huggingface_hub): `models--org--name/`
//!   (also `datasets--`, `spaces--`) with `blobs/` (files named by their
//!   SHA-256 when stored with LFS, by their git blob SHA-1 otherwise;
//!   `.incomplete` while downloading), `snapshots/<commit>/…` symlinks into
//!   `blobs/`, `refs/<branch>` and `.no_exist/`; lock files sit beside the
//!   repositories in `.locks/models--org--name/`.
//!   huggingface_hub 2.4 keeps Xet-backed files once per cache instead
//!   (`utils/_shared_blobs.py`): `<hub>/blobs/<2 hex>/<xet hash>` payloads,
//!   marked by `blobs/.huggingface-shared-blobs` (`1\n`), each with a
//!   `<xet hash>.refs` manifest listing the repository blob paths
//!   (`models--org--name/blobs/<etag>`) that are relative symlinks to it.
//!   A payload's users are the repositories whose link resolves to it, and
//!   those its `.refs` names with a link that does (validated as
//!   huggingface_hub validates them); a payload whose `.refs` is missing
//!   or unreadable is kept, never destroyed.
//! - the **Ollama** store: `manifests/<registry>/<namespace>/<model>/<tag>`,
//!   JSON whose `config` and `layers` digests name `blobs/sha256-<hex>`,
//!   one layer shared by every tag that uses it. Ollama before 0.1.30 named
//!   blobs `sha256:<hex>` (renamed at its start-up by `server/fixblobs.go`),
//!   and its blob path code (`manifest/paths.go` `BlobsPath`) accepts both
//!   spellings in a manifest's digests; names match case-insensitively
//!   (`server/routes.go` `getExistingName`).
//! - the **PyTorch hub** cache: `hub/checkpoints/<file>`.
//!
//! The walk tells [`Stores::enter`] about every directory (and the location
//! root's ancestors), which reads a store's index the first time it is seen:
//! an HF repository's blob names and snapshot links, an Ollama store's
//! manifests. Selection then asks who needs a file ([`Stores::needed_by`]),
//! which links or manifests depend on it ([`Stores::dependents`]) and where
//! identical bytes stay ([`Stores::identical`]).

use crate::hash::Digests;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// The largest Ollama manifest decom reads (they are a few KiB).
const MAX_MANIFEST: u64 = 1 << 20;
/// The largest shared-blob `.refs` manifest decom reads (a line per repository).
const MAX_REFS: u64 = 4 << 20;
/// huggingface_hub's marker of a cache-wide shared blob store, and its content.
const SHARED_MARKER: &str = ".huggingface-shared-blobs";
const SHARED_LAYOUT: &str = "1\n";

/// What the retired model is called in each store (from `[model]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ours<'a> {
    /// `models--org--name`, from `hf_repo`.
    pub hf_dir: Option<&'a str>,
    /// The repository folder the location is (or lies in): never
    /// "another" model, though only `hf_repo` makes its files the model's
    /// own whatever the match mode.
    pub hf_location: Option<&'a str>,
    pub ollama: Option<&'a OllamaName>,
    /// A location inside an Ollama store's `manifests/` (a model's folder
    /// of tags): no manifest under it is "another" model's.
    pub ollama_under: Option<&'a Path>,
    pub torch_checkpoints: &'a [String],
}

impl Ours<'_> {
    /// Whether an Ollama manifest is the tag `ollama_model` names
    /// (compared as Ollama does): its own whatever the match mode.
    fn named(&self, m: &OllamaManifest) -> bool {
        self.ollama.is_some_and(|n| m.name.is(n))
    }

    /// Whether an Ollama manifest is not another model's: the named tag,
    /// or one under the location.
    fn has(&self, m: &OllamaManifest) -> bool {
        self.named(m) || self.ollama_under.is_some_and(|u| m.path.starts_with(u))
    }

    /// Whether a Hugging Face repository folder is not another model's.
    fn hf_has(&self, repo: &str) -> bool {
        Some(repo) == self.hf_dir || Some(repo) == self.hf_location
    }
}

/// A Hugging Face repository folder in a hub cache.
#[derive(Debug)]
pub struct HfRepo {
    pub dir: PathBuf,
    /// `models--org--name`.
    pub name: String,
    /// File names in `blobs/` (content hashes), downloads in progress excluded.
    blobs: HashSet<String>,
    /// Blob path → the snapshot links that resolve to it.
    links: HashMap<PathBuf, Vec<PathBuf>>,
}

/// One payload of huggingface_hub's shared blob store and who uses it.
#[derive(Debug, Default)]
struct Payload {
    /// Repositories its `.refs` names with a link that resolves to it;
    /// `None` when `.refs` is missing or unreadable (then nothing is known).
    refs: Option<BTreeSet<String>>,
    /// Repositories whose `blobs/<etag>` link resolves to it, and the links.
    linked: BTreeSet<String>,
    links: Vec<PathBuf>,
}

impl Payload {
    fn users(&self) -> BTreeSet<&str> {
        self.refs
            .iter()
            .flatten()
            .chain(&self.linked)
            .map(String::as_str)
            .collect()
    }
}

/// A hub cache folder (`HF_HUB_CACHE`): its repositories and, with
/// huggingface_hub 2.4, its shared blob store.
#[derive(Debug)]
struct Hub {
    dir: PathBuf,
    /// Every repository folder in it (`models--org--name`).
    repos: BTreeSet<String>,
    /// Payload path → its users; empty without a marked shared store.
    payloads: HashMap<PathBuf, Payload>,
    /// Repository blob link → the payload it resolves to.
    behind: HashMap<PathBuf, PathBuf>,
}

impl Hub {
    fn store(&self) -> PathBuf {
        self.dir.join("blobs")
    }

    /// The payload a path of the shared store belongs to: the payload
    /// itself, its `.refs` or its `.lock`.
    fn payload_of(&self, path: &Path) -> Option<(&PathBuf, &Payload)> {
        if path.parent()?.parent()? != self.store() {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        let hash = name
            .strip_suffix(".refs")
            .or_else(|| name.strip_suffix(".lock"))
            .unwrap_or(name);
        self.payloads.get_key_value(&path.with_file_name(hash))
    }

    /// The repository a path under the hub belongs to: its own folder, or
    /// its entry in `.locks/`.
    fn repo_of(&self, path: &Path) -> Option<&str> {
        let rel = path.strip_prefix(&self.dir).ok()?;
        let mut c = rel.iter();
        let first = c.next()?.to_str()?;
        let name = if first == ".locks" {
            c.next()?.to_str()?
        } else {
            first
        };
        self.repos.get(name).map(String::as_str)
    }
}

pub use crate::manifest::OllamaName;

/// A manifest's name from its path below `manifests/`.
fn name_from_rel(rel: &Path) -> Option<OllamaName> {
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [r, n, m, t] => Some(OllamaName {
            registry: r.to_string(),
            namespace: n.to_string(),
            model: m.to_string(),
            tag: t.to_string(),
        }),
        _ => None,
    }
}

/// One Ollama manifest: a model tag and the blobs it needs.
#[derive(Debug)]
pub struct OllamaManifest {
    pub path: PathBuf,
    pub name: OllamaName,
    /// The SHA-256 (lowercase hex) of each blob it names (`config` and
    /// `layers`), whichever way the digest was spelled.
    pub blobs: Vec<String>,
}

/// An Ollama store: the folder holding `blobs/` and `manifests/`.
#[derive(Debug)]
struct OllamaStore {
    root: PathBuf,
    manifests: Vec<OllamaManifest>,
    /// SHA-256 → the blob files holding it (`sha256-<hex>`, and the
    /// `sha256:<hex>` of Ollama before 0.1.30; both may be there).
    files: HashMap<String, Vec<PathBuf>>,
}

impl OllamaStore {
    fn blob_users<'a>(&'a self, hex: &'a str) -> impl Iterator<Item = &'a OllamaManifest> {
        self.manifests
            .iter()
            .filter(move |m| m.blobs.iter().any(|b| b == hex))
    }
}

/// The SHA-256 a blob file name or a manifest digest stands for, as
/// Ollama's `BlobsPath` reads it: `sha256:` or `sha256-` and 64 hex digits
/// (either case).
pub fn ollama_digest(name: &str) -> Option<String> {
    let hex = name
        .strip_prefix("sha256:")
        .or_else(|| name.strip_prefix("sha256-"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// How the retired model's own store entries are to be treated.
#[derive(Debug, PartialEq, Eq)]
pub enum Own {
    /// In the model's Hugging Face repository folder, or a shared-store
    /// payload only that repository uses.
    HfRepo,
    /// A shared-store payload of the model that other repositories use too.
    HfShared,
    /// The model's Ollama manifest, or a layer only it uses.
    Ollama,
    /// A layer of the model that other tags use too (named).
    OllamaShared(Vec<String>),
    /// A PyTorch hub checkpoint the manifest names.
    TorchHub,
}

/// The models a location's stores hold, for "did you mean" when the
/// manifest names one that is not there.
#[derive(Debug, Default)]
pub struct Seen {
    pub hf: BTreeSet<String>,
    pub ollama: Vec<OllamaName>,
}

/// The model stores seen so far in a location.
#[derive(Debug, Default)]
pub struct Stores {
    hf: Vec<HfRepo>,
    hubs: Vec<Hub>,
    ollama: Vec<OllamaStore>,
    seen: HashSet<PathBuf>,
}

pub fn is_hf_repo_name(name: &str) -> bool {
    ["models--", "datasets--", "spaces--", "kernels--"]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(|r| r.contains("--")))
}

/// `base` joined with a link target, `..` resolved by name (a link is never
/// followed to find where it points).
fn lexical_join(base: &Path, target: &Path) -> PathBuf {
    let mut out = if target.is_absolute() {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    };
    for c in target.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where the link at `link` points, by name; `None` when it is no link.
fn link_target(link: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(link).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let t = std::fs::read_link(link).ok()?;
    Some(lexical_join(link.parent()?, &t))
}

impl Stores {
    /// Whether any Hugging Face repository was seen (then small files are
    /// also hashed the git way, the name the cache gives them).
    pub fn has_hf(&self) -> bool {
        !self.hf.is_empty()
    }

    /// The models seen, for "not found" and "did you mean".
    pub fn seen_models(&self, seen: &mut Seen) {
        for h in &self.hubs {
            seen.hf.extend(h.repos.iter().cloned());
        }
        seen.hf.extend(self.hf.iter().map(|r| r.name.clone()));
        for s in &self.ollama {
            seen.ollama
                .extend(s.manifests.iter().map(|m| m.name.clone()));
        }
    }

    /// Look at a directory the walk meets: read the index of a store it
    /// belongs to. An HF repository is known by its name, and its hub (the
    /// folder above it) is read whole once: every repository and the
    /// shared blob store; an Ollama store by its `blobs/` folder (walked
    /// before `manifests/`, name order) with a `manifests/` beside it, so
    /// ordinary folders cost no extra `lstat`. Returns what could not be
    /// read, to be reported.
    pub fn enter(&mut self, dir: &Path) -> Vec<(PathBuf, String)> {
        let mut problems = Vec::new();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_hf_repo_name(name) && is_real_dir(&dir.join("blobs")) {
            if let Some(hub) = dir.parent() {
                self.hub_at(hub, &mut problems);
            }
            if self.seen.insert(dir.to_path_buf()) {
                self.hf.push(read_hf_repo(dir, name, &mut problems));
            }
        }
        if name == ".locks"
            && let Some(hub) = dir.parent()
        {
            // Walked before the repositories (name order): the hub is read
            // now, so another repository's lock files are known as its own.
            self.hub_at(hub, &mut problems);
        }
        if name == "blobs"
            && let Some(root) = dir.parent()
        {
            if is_shared_store(dir) {
                self.hub_at(root, &mut problems);
            }
            self.ollama_at(root, &mut problems);
        }
        problems
    }

    /// [`Stores::enter`] for a folder above the location's root, which the
    /// walk never meets: it may itself be an Ollama store's root or a hub.
    pub fn enter_above(&mut self, dir: &Path) -> Vec<(PathBuf, String)> {
        let mut problems = self.enter(dir);
        self.ollama_at(dir, &mut problems);
        if is_shared_store(&dir.join("blobs")) {
            self.hub_at(dir, &mut problems);
        }
        problems
    }

    fn hub_at(&mut self, dir: &Path, problems: &mut Vec<(PathBuf, String)>) {
        if self.seen.insert(dir.join("blobs").join(SHARED_MARKER)) {
            self.hubs.push(read_hub(dir, problems));
        }
    }

    fn ollama_at(&mut self, root: &Path, problems: &mut Vec<(PathBuf, String)>) {
        let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name != "hub"
            && !is_hf_repo_name(name)
            && self.seen.insert(root.join("manifests"))
            && is_real_dir(&root.join("blobs"))
            && is_real_dir(&root.join("manifests"))
        {
            self.ollama.push(read_ollama(root, problems));
        }
    }

    /// The shared-store payload `path` belongs to (the payload, its `.refs`
    /// or its `.lock`), with its users.
    fn payload_of(&self, path: &Path) -> Option<(&PathBuf, &Payload)> {
        self.hubs.iter().find_map(|h| h.payload_of(path))
    }

    /// The layers of the retired model's Ollama manifest at `path` that
    /// only the model uses and that lie outside `root`: a location of
    /// manifests alone leaves them.
    pub fn ollama_layers_outside(&self, path: &Path, ours: &Ours<'_>, root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for s in &self.ollama {
            let Some(m) = s.manifests.iter().find(|m| m.path == path) else {
                continue;
            };
            for hex in &m.blobs {
                if s.blob_users(hex).all(|u| ours.has(u)) {
                    out.extend(
                        s.files
                            .get(hex)
                            .into_iter()
                            .flatten()
                            .filter(|f| !f.starts_with(root))
                            .cloned(),
                    );
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The shared-store payload a repository blob link resolves to.
    pub fn payload_behind(&self, link: &Path) -> Option<&Path> {
        self.hubs
            .iter()
            .find_map(|h| h.behind.get(link).map(PathBuf::as_path))
    }

    /// A shared-store entry whose references cannot be validated (its
    /// `.refs` is missing or unreadable): it is kept whatever the location
    /// says, as huggingface_hub keeps it. Returns why.
    pub fn unvalidated(&self, path: &Path) -> Option<String> {
        let (payload, p) = self.payload_of(path)?;
        p.refs.is_none().then(|| {
            let users: Vec<&str> = p.users().into_iter().collect();
            format!(
                "a shared Hugging Face blob whose {}.refs manifest is missing or unreadable, so which repositories use it cannot be validated; kept{}",
                payload.display(),
                if users.is_empty() {
                    String::new()
                } else {
                    format!(" (linked from {})", users.join(", "))
                }
            )
        })
    }

    /// How the retired model owns `path`, if it does.
    pub fn own(&self, path: &Path, ours: &Ours<'_>) -> Option<Own> {
        if let Some(h) = ours.hf_dir {
            if let Some((_, p)) = self.payload_of(path) {
                if path.extension().is_some_and(|e| e == "lock") {
                    // huggingface_hub keeps a payload's lock file.
                    return None;
                }
                let users = p.users();
                return match (users.contains(h), users.len(), &p.refs) {
                    (false, _, _) | (_, _, None) => None,
                    (true, 1, Some(_)) => Some(Own::HfRepo),
                    (true, _, Some(_)) => Some(Own::HfShared),
                };
            }
            if self.hubs.iter().any(|hub| hub.repo_of(path) == Some(h))
                || path.iter().any(|c| c == h)
            {
                return Some(Own::HfRepo);
            }
        }
        if ours.ollama.is_some() {
            for s in &self.ollama {
                if let Some(m) = s.manifests.iter().find(|m| m.path == path) {
                    return ours.named(m).then_some(Own::Ollama);
                }
                let Some(hex) = self.ollama_blob(s, path) else {
                    continue;
                };
                let users: Vec<&OllamaManifest> = s.blob_users(&hex).collect();
                if !users.iter().any(|m| ours.named(m)) {
                    return None;
                }
                let others: Vec<String> = users
                    .iter()
                    .filter(|m| !ours.has(m))
                    .map(|m| m.name.to_string())
                    .collect();
                return Some(if others.is_empty() {
                    Own::Ollama
                } else {
                    Own::OllamaShared(others)
                });
            }
        }
        let name = path.file_name().and_then(|n| n.to_str())?;
        let parent = path.parent()?;
        if ours.torch_checkpoints.iter().any(|c| c == name)
            && parent.file_name().is_some_and(|n| n == "checkpoints")
            && parent.parent()?.file_name().is_some_and(|n| n == "hub")
        {
            return Some(Own::TorchHub);
        }
        None
    }

    /// The SHA-256 a file in an Ollama store's `blobs/` stands for.
    fn ollama_blob(&self, s: &OllamaStore, path: &Path) -> Option<String> {
        (path.parent()? == s.root.join("blobs"))
            .then(|| ollama_digest(path.file_name()?.to_str()?))
            .flatten()
    }

    /// The other models whose store holds `path` itself: another Hugging
    /// Face repository's folder or `.locks/` entry, a shared-store payload
    /// another repository uses, the hub's own files while other
    /// repositories stay, an Ollama layer or manifest of another model.
    /// Empty when no known store claims it.
    pub fn needed_by(&self, path: &Path, ours: &Ours<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let is_ours = |r: &str| ours.hf_has(r);
        for h in &self.hubs {
            if let Some((_, p)) = h.payload_of(path) {
                out.extend(
                    p.users()
                        .into_iter()
                        .filter(|r| !is_ours(r))
                        .map(str::to_string),
                );
            } else if let Some(r) = h.repo_of(path) {
                if !is_ours(r) {
                    out.push(r.to_string());
                }
            } else if path.parent() == Some(&h.dir) || path.parent() == Some(&h.store()) {
                // CACHEDIR.TAG, the shared store's marker: the cache's own.
                out.extend(h.repos.iter().filter(|r| !is_ours(r)).cloned());
            }
        }
        for r in &self.hf {
            if !is_ours(&r.name) && path.starts_with(&r.dir) && !out.contains(&r.name) {
                out.push(r.name.clone());
            }
        }
        for s in &self.ollama {
            if let Some(hex) = self.ollama_blob(s, path) {
                out.extend(
                    s.blob_users(&hex)
                        .filter(|m| !ours.has(m))
                        .map(|m| m.name.to_string()),
                );
            }
            if let Some(m) = s.manifests.iter().find(|m| m.path == path)
                && !ours.has(m)
            {
                out.push(m.name.to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// What breaks if `path` goes: the snapshot links that resolve to it,
    /// the repository links into a shared-store payload, the Ollama
    /// manifests that name it.
    pub fn dependents(&self, path: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for r in &self.hf {
            if let Some(l) = r.links.get(path) {
                out.extend(l.iter().cloned());
            }
        }
        for h in &self.hubs {
            if let Some(p) = h.payloads.get(path) {
                for l in &p.links {
                    out.push(l.clone());
                    for r in &self.hf {
                        if let Some(s) = r.links.get(l) {
                            out.extend(s.iter().cloned());
                        }
                    }
                }
            }
        }
        for s in &self.ollama {
            if let Some(hex) = self.ollama_blob(s, path) {
                out.extend(s.blob_users(&hex).map(|m| m.path.clone()));
            }
        }
        out.sort();
        out
    }

    /// Identical bytes that stay in another model's store, found by the
    /// content hash that names them there: `(model, path)` pairs.
    pub fn identical(&self, d: &Digests, except: &Path, ours: &Ours<'_>) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for r in &self.hf {
            if ours.hf_has(&r.name) {
                continue;
            }
            for name in std::iter::once(&d.sha256).chain(d.git_blob.as_ref()) {
                if r.blobs.contains(name) {
                    let p = r.dir.join("blobs").join(name);
                    if p != except {
                        out.push((r.name.clone(), p));
                    }
                }
            }
        }
        for s in &self.ollama {
            let others: Vec<String> = s
                .blob_users(&d.sha256)
                .filter(|m| !ours.has(m))
                .map(|m| m.name.to_string())
                .collect();
            if others.is_empty() {
                continue;
            }
            for p in s.files.get(&d.sha256).into_iter().flatten() {
                if p != except {
                    out.push((others.join(", "), p.clone()));
                }
            }
        }
        out
    }

    /// The Ollama manifests and Hugging Face links that depend on `path`
    /// now and are not among `planned`: read again at execute, so a tag
    /// copied (`ollama cp`) or a repository downloaded since approval keeps
    /// what it needs. `(model, dependent)` pairs.
    pub fn new_dependents(
        &self,
        path: &Path,
        planned: &HashSet<PathBuf>,
    ) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for s in &self.ollama {
            if let Some(hex) = self.ollama_blob(s, path) {
                out.extend(
                    s.blob_users(&hex)
                        .filter(|m| !planned.contains(&m.path))
                        .map(|m| (m.name.to_string(), m.path.clone())),
                );
            }
        }
        for h in &self.hubs {
            if let Some(p) = h.payloads.get(path) {
                for l in p.links.iter().filter(|l| !planned.contains(*l)) {
                    let repo = h.repo_of(l).unwrap_or("another repository");
                    out.push((repo.to_string(), l.clone()));
                }
            }
        }
        out
    }
}

/// A model the manifest names (`hf_repo`, `ollama_model`) that no local
/// location holds is an input error, with the closest names found: a typo
/// must not trace into a plan that disposes of nothing of the model.
pub fn named_model_found(model: &crate::manifest::Model, seen: &Seen) -> crate::error::Result<()> {
    let closest = |want: &str, have: &mut dyn Iterator<Item = String>| -> String {
        let mut scored: Vec<(f64, String)> = have
            .map(|h| {
                (
                    strsim::jaro_winkler(&want.to_lowercase(), &h.to_lowercase()),
                    h,
                )
            })
            .filter(|(s, _)| *s > 0.7)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.dedup_by(|a, b| a.1 == b.1);
        match scored.as_slice() {
            [] => String::new(),
            s => format!(
                "; did you mean {}?",
                s.iter()
                    .take(3)
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    };
    if let Some(repo) = &model.hf_repo {
        let dir = format!("models--{}", repo.replace('/', "--"));
        if !seen.hf.contains(&dir) {
            let names = seen
                .hf
                .iter()
                .filter_map(|d| d.strip_prefix("models--").map(|r| r.replacen("--", "/", 1)));
            return Err(crate::error::Error::input(format!(
                "hf_repo = {repo:?}: no Hugging Face cache in the locations holds {dir}{}",
                closest(repo, &mut names.into_iter())
            )));
        }
    }
    if let Some(name) = &model.ollama_model
        && let Some(want) = OllamaName::parse(name)
        && !seen.ollama.iter().any(|n| n.is(&want))
    {
        let names = seen.ollama.iter().map(|n| n.to_string());
        return Err(crate::error::Error::input(format!(
            "ollama_model = {name:?}: no Ollama store in the locations has a manifest for {want}{}",
            closest(&want.to_string(), &mut names.into_iter())
        )));
    }
    Ok(())
}

fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// huggingface_hub's `is_shared_blobs_dir`: a real folder holding a
/// regular marker file whose text is exactly the layout version.
fn is_shared_store(dir: &Path) -> bool {
    let marker = dir.join(SHARED_MARKER);
    is_real_dir(dir)
        && std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file() && m.len() < 64)
        && std::fs::read(&marker).is_ok_and(|b| b == SHARED_LAYOUT.as_bytes())
}

/// Read a hub folder: its repository folders and, when `blobs/` is a
/// marked shared store, every payload with the users its `.refs` names
/// (each line validated as huggingface_hub's
/// `_read_valid_manifest_references` does: `<type>s--…/blobs/<name>`, and
/// that path a link resolving to this payload) and the repositories whose
/// blob links resolve to it.
fn read_hub(dir: &Path, problems: &mut Vec<(PathBuf, String)>) -> Hub {
    let mut hub = Hub {
        dir: dir.to_path_buf(),
        repos: BTreeSet::new(),
        payloads: HashMap::new(),
        behind: HashMap::new(),
    };
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && is_hf_repo_name(n)
                    && e.file_type().is_ok_and(|t| t.is_dir())
                {
                    hub.repos.insert(n.to_string());
                }
            }
        }
        Err(e) => problems.push((dir.to_path_buf(), e.to_string())),
    }
    let store = hub.store();
    if !is_shared_store(&store) {
        return hub;
    }
    let is_hash = |s: &str| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let prefixes = match std::fs::read_dir(&store) {
        Ok(rd) => rd.flatten().collect::<Vec<_>>(),
        Err(e) => {
            problems.push((store.clone(), e.to_string()));
            Vec::new()
        }
    };
    for pre in prefixes {
        let Some(hh) = pre.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if hh.len() != 2 || !pre.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let rd = match std::fs::read_dir(pre.path()) {
            Ok(rd) => rd,
            Err(e) => {
                problems.push((pre.path(), e.to_string()));
                continue;
            }
        };
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if is_hash(&name) && name.starts_with(&hh) && e.file_type().is_ok_and(|t| t.is_file()) {
                hub.payloads.insert(e.path(), Payload::default());
            }
        }
    }
    for (payload, p) in hub.payloads.iter_mut() {
        let refs = payload.with_file_name(format!(
            "{}.refs",
            payload.file_name().and_then(|n| n.to_str()).unwrap_or("")
        ));
        p.refs = match crate::util::read_text(&refs, "shared blob .refs", MAX_REFS) {
            Ok(text) => Some(
                text.lines()
                    .filter_map(|line| {
                        let parts: Vec<&str> = line.split('/').collect();
                        match parts.as_slice() {
                            [repo, "blobs", blob]
                                if is_hf_repo_name(repo)
                                    && !blob.is_empty()
                                    && *blob != ".."
                                    && *blob != "." =>
                            {
                                (link_target(&dir.join(line)).as_deref() == Some(payload.as_path()))
                                    .then(|| repo.to_string())
                            }
                            _ => None,
                        }
                    })
                    .collect(),
            ),
            Err(_) => None,
        };
    }
    for repo in hub.repos.clone() {
        let blobs = dir.join(&repo).join("blobs");
        let Ok(rd) = std::fs::read_dir(&blobs) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            if let Some(t) = link_target(&e.path())
                && let Some(p) = hub.payloads.get_mut(&t)
            {
                p.linked.insert(repo.clone());
                p.links.push(e.path());
                hub.behind.insert(e.path(), t);
            }
        }
    }
    hub
}

/// Read a repository's blob names and snapshot links (never following one).
fn read_hf_repo(dir: &Path, name: &str, problems: &mut Vec<(PathBuf, String)>) -> HfRepo {
    let mut blobs = HashSet::new();
    match std::fs::read_dir(dir.join("blobs")) {
        Ok(rd) => {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && !n.ends_with(".incomplete")
                {
                    blobs.insert(n.to_string());
                }
            }
        }
        Err(e) => problems.push((dir.join("blobs"), e.to_string())),
    }
    let mut links: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
    let snapshots = dir.join("snapshots");
    if is_real_dir(&snapshots) {
        for e in walkdir::WalkDir::new(&snapshots).follow_links(false) {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    problems.push((snapshots.clone(), e.to_string()));
                    continue;
                }
            };
            if !e.path_is_symlink() {
                continue;
            }
            match std::fs::read_link(e.path()) {
                Ok(t) => {
                    let base = e.path().parent().unwrap_or(&snapshots);
                    links
                        .entry(lexical_join(base, &t))
                        .or_default()
                        .push(e.path().to_path_buf());
                }
                Err(err) => problems.push((e.path().to_path_buf(), err.to_string())),
            }
        }
    }
    HfRepo {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        blobs,
        links,
    }
}

/// Read every manifest of an Ollama store (never following a link) and
/// the names of its blobs.
fn read_ollama(root: &Path, problems: &mut Vec<(PathBuf, String)>) -> OllamaStore {
    let dir = root.join("manifests");
    let mut manifests = Vec::new();
    for e in walkdir::WalkDir::new(&dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                problems.push((dir.clone(), e.to_string()));
                continue;
            }
        };
        if !e.file_type().is_file() {
            continue;
        }
        let path = e.path();
        let Some(name) = path.strip_prefix(&dir).ok().and_then(name_from_rel) else {
            continue;
        };
        let blobs = crate::util::read_text(path, "Ollama manifest", MAX_MANIFEST)
            .map_err(|e| e.to_string())
            .and_then(|t| manifest_blobs(&t));
        match blobs {
            Ok(blobs) => manifests.push(OllamaManifest {
                path: path.to_path_buf(),
                name,
                blobs,
            }),
            Err(e) => problems.push((
                path.to_path_buf(),
                format!("not a readable Ollama manifest ({e}): the layers it names are unknown"),
            )),
        }
    }
    let mut files: HashMap<String, Vec<PathBuf>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir(root.join("blobs")) {
        for e in rd.flatten() {
            if let Some(hex) = e.file_name().to_str().and_then(ollama_digest) {
                files.entry(hex).or_default().push(e.path());
            }
        }
    }
    OllamaStore {
        root: root.to_path_buf(),
        manifests,
        files,
    }
}

/// The SHA-256 of each blob an Ollama manifest names (`config` and
/// `layers`), from digests spelled `sha256:<hex>` or `sha256-<hex>`.
fn manifest_blobs(text: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let layers = v.get("layers").and_then(|l| l.as_array());
    for d in v
        .get("config")
        .into_iter()
        .chain(layers.into_iter().flatten())
    {
        let digest = d
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or("a layer without a digest")?;
        let hex = ollama_digest(digest)
            .ok_or_else(|| format!("digest {digest:?} is not sha256:<64 hex>"))?;
        out.push(hex);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_names_take_the_defaults() {
        let n = OllamaName::parse("llama3").unwrap();
        assert_eq!(n.to_string(), "llama3:latest");
        assert_eq!(n.registry, "registry.ollama.ai");
        let n = OllamaName::parse("acme/fraud:v2").unwrap();
        assert_eq!(n.to_string(), "registry.ollama.ai/acme/fraud:v2");
        let n = OllamaName::parse("reg.example:5000/acme/fraud:v2");
        assert!(n.is_none(), "a port is not a name character");
        assert!(OllamaName::parse("a/b/c/d:e").is_none());
        assert!(OllamaName::parse("../x:y").is_none());
        assert!(OllamaName::parse("x:").is_none());
    }

    #[test]
    fn links_resolve_by_name() {
        assert_eq!(
            lexical_join(
                Path::new("/c/m/snapshots/r/sub"),
                Path::new("../../../blobs/x")
            ),
            PathBuf::from("/c/m/blobs/x")
        );
        assert_eq!(
            lexical_join(Path::new("/a"), Path::new("/b/./c")),
            PathBuf::from("/b/c")
        );
    }

    #[test]
    fn hub_repo_names() {
        assert!(is_hf_repo_name("models--acme--fraud"));
        assert!(is_hf_repo_name("datasets--acme--data"));
        assert!(!is_hf_repo_name("models--"));
        assert!(!is_hf_repo_name("my-models"));
    }
}
