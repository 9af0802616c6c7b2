//! Model stores decom recognises inside a local location, and which model
//! needs which bytes there. Three layouts, as their own tools write them:
//!
//! - the **Hugging Face hub cache** (huggingface_hub): `models--org--name/`
//!   (also `datasets--`, `spaces--`) with `blobs/` (files named by their
//!   SHA-256 when stored with LFS, by their git blob SHA-1 otherwise;
//!   `.incomplete` while downloading), `snapshots/<commit>/…` symlinks into
//!   `blobs/`, `refs/<branch>` and `.no_exist/`; lock files sit beside the
//!   repositories in `.locks/models--org--name/`.
//! - the **Ollama** store: `manifests/<registry>/<namespace>/<model>/<tag>`,
//!   JSON whose `config` and `layers` digests name `blobs/sha256-<hex>`,
//!   one layer shared by every tag that uses it.
//! - the **PyTorch hub** cache: `hub/checkpoints/<file>`.
//!
//! The walk tells [`Stores::enter`] about every directory (and the location
//! root's ancestors), which reads a store's index the first time it is seen:
//! an HF repository's blob names and snapshot links, an Ollama store's
//! manifests. Selection then asks who needs a file ([`Stores::needed_by`]),
//! which links or manifests depend on it ([`Stores::dependents`]) and where
//! identical bytes stay ([`Stores::identical`]).

use crate::hash::Digests;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// The largest Ollama manifest decom reads (they are a few KiB).
const MAX_MANIFEST: u64 = 1 << 20;

/// What the retired model is called in each store (from `[model]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ours<'a> {
    /// `models--org--name`, from `hf_repo`.
    pub hf_dir: Option<&'a str>,
    pub ollama: Option<&'a OllamaName>,
    pub torch_checkpoints: &'a [String],
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

/// An Ollama model name: `registry/namespace/model:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaName {
    pub registry: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

impl OllamaName {
    const REGISTRY: &'static str = "registry.ollama.ai";
    const NAMESPACE: &'static str = "library";

    /// Parse `[registry/][namespace/]model[:tag]` as Ollama does (defaults
    /// `registry.ollama.ai`, `library`, `latest`).
    pub fn parse(s: &str) -> Option<OllamaName> {
        let (path, tag) = match s.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, t),
            _ => (s, "latest"),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (registry, namespace, model) = match parts.as_slice() {
            [m] => (Self::REGISTRY, Self::NAMESPACE, *m),
            [n, m] => (Self::REGISTRY, *n, *m),
            [r, n, m] => (*r, *n, *m),
            _ => return None,
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (ok(registry) && ok(namespace) && ok(model) && ok(tag)).then(|| OllamaName {
            registry: registry.to_string(),
            namespace: namespace.to_string(),
            model: model.to_string(),
            tag: tag.to_string(),
        })
    }

    /// From a manifest's path below `manifests/`.
    fn from_rel(rel: &Path) -> Option<OllamaName> {
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
}

impl std::fmt::Display for OllamaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.registry == Self::REGISTRY && self.namespace == Self::NAMESPACE {
            write!(f, "{}:{}", self.model, self.tag)
        } else {
            write!(
                f,
                "{}/{}/{}:{}",
                self.registry, self.namespace, self.model, self.tag
            )
        }
    }
}

/// One Ollama manifest: a model tag and the blobs it needs.
#[derive(Debug)]
pub struct OllamaManifest {
    pub path: PathBuf,
    pub name: OllamaName,
    /// Blob file names (`sha256-<hex>`).
    pub blobs: Vec<String>,
}

/// An Ollama store: the folder holding `blobs/` and `manifests/`.
#[derive(Debug)]
struct OllamaStore {
    root: PathBuf,
    manifests: Vec<OllamaManifest>,
}

impl OllamaStore {
    fn blob_users<'a>(&'a self, blob: &'a str) -> impl Iterator<Item = &'a OllamaManifest> {
        self.manifests
            .iter()
            .filter(move |m| m.blobs.iter().any(|b| b == blob))
    }
}

/// How the retired model's own store entries are to be treated.
#[derive(Debug, PartialEq, Eq)]
pub enum Own {
    /// In the model's Hugging Face repository folder.
    HfRepo,
    /// The model's Ollama manifest, or a layer only it uses.
    Ollama,
    /// A layer of the model that other tags use too (named).
    OllamaShared(Vec<String>),
    /// A PyTorch hub checkpoint the manifest names.
    TorchHub,
}

/// The model stores seen so far in a location.
#[derive(Debug, Default)]
pub struct Stores {
    hf: Vec<HfRepo>,
    ollama: Vec<OllamaStore>,
    seen: HashSet<PathBuf>,
}

fn is_hf_repo_name(name: &str) -> bool {
    ["models--", "datasets--", "spaces--"]
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

impl Stores {
    /// Whether any Hugging Face repository was seen (then small files are
    /// also hashed the git way, the name the cache gives them).
    pub fn has_hf(&self) -> bool {
        !self.hf.is_empty()
    }

    /// Look at a directory the walk meets: read the index of a store it
    /// belongs to. An HF repository is known by its name; an Ollama store
    /// by its `blobs/` folder (walked before `manifests/`, name order) with
    /// a `manifests/` beside it, so ordinary folders cost no extra `lstat`.
    /// Returns what could not be read, to be reported.
    pub fn enter(&mut self, dir: &Path) -> Vec<(PathBuf, String)> {
        let mut problems = Vec::new();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_hf_repo_name(name)
            && self.seen.insert(dir.to_path_buf())
            && is_real_dir(&dir.join("blobs"))
        {
            self.hf.push(read_hf_repo(dir, name, &mut problems));
        }
        if name == "blobs"
            && let Some(root) = dir.parent()
        {
            self.ollama_at(root, &mut problems);
        }
        problems
    }

    /// [`Stores::enter`] for a folder above the location's root, which the
    /// walk never meets: it may itself be an Ollama store's root.
    pub fn enter_above(&mut self, dir: &Path) -> Vec<(PathBuf, String)> {
        let mut problems = self.enter(dir);
        self.ollama_at(dir, &mut problems);
        problems
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

    /// How the retired model owns `path`, if it does.
    pub fn own(&self, path: &Path, ours: &Ours<'_>) -> Option<Own> {
        if let Some(h) = ours.hf_dir
            && path.iter().any(|c| c == h)
        {
            return Some(Own::HfRepo);
        }
        if let Some(name) = ours.ollama {
            for s in &self.ollama {
                if let Some(m) = s.manifests.iter().find(|m| m.path == path) {
                    return (m.name == *name).then_some(Own::Ollama);
                }
                let Some(blob) = self.ollama_blob(s, path) else {
                    continue;
                };
                let users: Vec<&OllamaManifest> = s.blob_users(blob).collect();
                if !users.iter().any(|m| m.name == *name) {
                    return None;
                }
                let others: Vec<String> = users
                    .iter()
                    .filter(|m| m.name != *name)
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

    fn ollama_blob<'a>(&self, s: &OllamaStore, path: &'a Path) -> Option<&'a str> {
        (path.parent()? == s.root.join("blobs"))
            .then(|| path.file_name()?.to_str())
            .flatten()
    }

    /// The other models whose store holds `path` itself: another Hugging
    /// Face repository's folder, an Ollama layer or manifest of another
    /// model. Empty when no known store claims it.
    pub fn needed_by(&self, path: &Path, ours: &Ours<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.hf {
            if Some(r.name.as_str()) != ours.hf_dir && path.starts_with(&r.dir) {
                out.push(r.name.clone());
            }
        }
        for s in &self.ollama {
            if let Some(blob) = self.ollama_blob(s, path) {
                out.extend(
                    s.blob_users(blob)
                        .filter(|m| Some(&m.name) != ours.ollama)
                        .map(|m| m.name.to_string()),
                );
            }
            if let Some(m) = s.manifests.iter().find(|m| m.path == path)
                && Some(&m.name) != ours.ollama
            {
                out.push(m.name.to_string());
            }
        }
        out
    }

    /// What breaks if `path` goes: the snapshot links that resolve to it,
    /// the Ollama manifests that name it.
    pub fn dependents(&self, path: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for r in &self.hf {
            if let Some(l) = r.links.get(path) {
                out.extend(l.iter().cloned());
            }
        }
        for s in &self.ollama {
            if let Some(blob) = self.ollama_blob(s, path) {
                out.extend(s.blob_users(blob).map(|m| m.path.clone()));
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
            if Some(r.name.as_str()) == ours.hf_dir {
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
            let blob = format!("sha256-{}", d.sha256);
            let p = s.root.join("blobs").join(&blob);
            if p == except {
                continue;
            }
            let others: Vec<String> = s
                .blob_users(&blob)
                .filter(|m| Some(&m.name) != ours.ollama)
                .map(|m| m.name.to_string())
                .collect();
            if !others.is_empty() {
                out.push((others.join(", "), p));
            }
        }
        out
    }
}

fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
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

/// Read every manifest of an Ollama store (never following a link).
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
        let Some(name) = path.strip_prefix(&dir).ok().and_then(OllamaName::from_rel) else {
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
    OllamaStore {
        root: root.to_path_buf(),
        manifests,
    }
}

/// The blob file names an Ollama manifest names (`config` and `layers`).
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
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("digest {digest:?} is not sha256:<64 hex>"))?;
        out.push(format!("sha256-{hex}"));
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
