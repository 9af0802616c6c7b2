//! The manifest (`decom.toml`): what the operator asks for. The model's
//! identity, the locations to search and how to match there, the known
//! component hashes, the disposal profile, and who is involved.
//!
//! [`Manifest::load`] parses strictly (unknown keys are errors) and
//! [`Manifest::resolve`] turns it into a [`Resolved`] value with absolute,
//! canonical location roots and a merged component list, before any walk.
//! This module never touches artifacts.

mod components;
pub mod retain;

pub use components::{Alg, Component, Known, NotSearched};

use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::util::one_line;
use serde::{Deserialize, Serialize};
use std::path::{Component as PathComponent, Path, PathBuf};

/// Largest manifest we read (it is a small hand-written file).
const MAX_MANIFEST: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default = "default_profile")]
    pub profile: String,
    pub model: Model,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<Person>,
    #[serde(default)]
    pub locations: Vec<Location>,
    #[serde(default)]
    pub components: Vec<Component>,
    /// A `SHA256SUMS` file (as `sha256sum` writes it) of known components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256sums: Option<String>,
    /// A CycloneDX 1.5/1.6/1.7 JSON BOM listing the model's components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bom: Option<String>,
    /// Folders of models that stay: never planned, and identical bytes
    /// found there are reported as shared content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<Keep>,
    /// How to reach S3 locations (endpoint, region, path-style, hashing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<crate::store::s3::spec::Settings>,
    /// How to reach Google Cloud Storage locations (endpoint, hashing, proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<crate::store::gcs::spec::Settings>,
    /// Records kept deliberately, never planned (`[[retain]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retain: Vec<retain::Retain>,
}

fn default_profile() -> String {
    "nist-clear".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Hugging Face repository id (`org/name`), to recognise its hub cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf_repo: Option<String>,
    /// Ollama model (`name:tag`, or `registry/namespace/name:tag`): its
    /// manifest and the layers no other model uses, in an Ollama store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_model: Option<String>,
    /// PyTorch hub checkpoint file names (`hub/checkpoints/<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub torch_checkpoints: Vec<String>,
    /// The model's entry in an MLflow registry (`[model.mlflow]`): trace
    /// follows it to every artifact it points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow: Option<crate::store::mlflow::spec::Registry>,
}

impl Model {
    /// Whether the model is named in a store decom knows (Hugging Face,
    /// Ollama, PyTorch hub): a hash location then plans those entries even
    /// without component hashes.
    pub fn names_a_store(&self) -> bool {
        self.hf_repo.is_some() || self.ollama_model.is_some() || !self.torch_checkpoints.is_empty()
    }
}

/// A folder of a model that stays (`[[keep]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    /// A local directory (absolute path or file:// URI).
    pub uri: String,
    /// The model that needs it, as the plan names it (optional: without
    /// it the plan names the folder).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
}

impl Keep {
    /// What the plan calls the model that keeps this folder.
    pub fn label(&self) -> String {
        if self.model.trim().is_empty() {
            format!("the [[keep]] folder {}", self.uri)
        } else {
            self.model.clone()
        }
    }
}

/// What to do with matched content that another model needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shared {
    /// Keep it, and list it as a residual risk.
    #[default]
    Keep,
    /// Dispose of it anyway; the plan lists what will break.
    Dispose,
}

impl Shared {
    fn is_keep(&self) -> bool {
        *self == Shared::Keep
    }
}

/// A person named on the certificate (NIST SP 800-88 App. G fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

impl Person {
    /// Fields set in `over` win.
    pub fn overlay(&self, over: &Person) -> Person {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        Person {
            name: pick(&self.name, &over.name),
            title: pick(&self.title, &over.title),
            organisation: pick(&self.organisation, &over.organisation),
            location: pick(&self.location, &over.location),
            contact: pick(&self.contact, &over.contact),
        }
    }

    /// Read a details file: a TOML table with the fields above.
    pub fn load(path: &Path) -> Result<Person> {
        let text = crate::util::read_text(path, "operator details", 1 << 20)?;
        toml::from_str(&text).map_err(|e| {
            Error::input(format!(
                "{}: not a valid details file: {}",
                path.display(),
                crate::util::one_line(&e.to_string())
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub uri: String,
    #[serde(rename = "match", default)]
    pub match_mode: MatchMode,
    /// Globs relative to the location; when present only matching files count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs relative to the location that are never planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Follow the walk into other filesystems (mount points) below the root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cross_filesystems: bool,
    /// Content matched here that another model's store needs (another
    /// Hugging Face repo's blob, a layer of another Ollama model, a file in
    /// a `[[keep]]` folder): kept (default) or disposed of anyway.
    #[serde(default, skip_serializing_if = "Shared::is_keep")]
    pub shared: Shared,
    /// How an S3 folder is disposed of: by decom (default) or by S3 Lifecycle.
    #[serde(default, skip_serializing_if = "Method::is_purge")]
    pub method: Method,
    /// S3: after the purge, also destroy the customer-managed KMS keys that
    /// encrypt the planned versions (cryptographic erase), where trace
    /// finds them dedicated to this model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub crypto_erase: bool,
    /// The KMS deletion waiting period, 7 to 30 days (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_erase_days: Option<i32>,
    /// Allow a location that is, holds or lies in a system folder (`/etc`,
    /// `/usr`, `/var`, a home folder as a whole, …), refused otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_system: bool,
    /// Dispose of files another process holds open for writing (found at
    /// trace and again at execute); skipped otherwise, as that process can
    /// go on writing into them after the certificate is issued.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_open_files: bool,
    /// A location trace added, and why (an MLflow model version's artifact
    /// location, the registry entry itself); absent for the manifest's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_by: Option<String>,
}

/// KMS's own bounds on a key deletion's waiting period, in days.
pub const CRYPTO_ERASE_DAYS: std::ops::RangeInclusive<i32> = 7..=30;
/// The waiting period when the manifest names none (KMS's default too).
pub const DEFAULT_CRYPTO_ERASE_DAYS: i32 = 30;

impl Location {
    /// The approved waiting period for crypto-erase key deletions.
    pub fn crypto_erase_days(&self) -> i32 {
        self.crypto_erase_days.unwrap_or(DEFAULT_CRYPTO_ERASE_DAYS)
    }
}

/// Who destroys an S3 location's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// decom deletes every version itself (DeleteObjects) and proves it.
    #[default]
    Purge,
    /// decom installs S3 Lifecycle rules scoped to the folder; the location
    /// stays pending until a later `execute --resume` lists it empty.
    Lifecycle,
}

impl Method {
    fn is_purge(&self) -> bool {
        *self == Method::Purge
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Every regular file under the location (subject to include/exclude).
    #[default]
    All,
    /// Only files whose SHA-256 (or SHA-384, SHA-512) equals a known
    /// component's.
    Hash,
}

impl Location {
    /// The rules of one location (`i` counts from 0) that the manifest's
    /// schema cannot say: what a method or `crypto_erase` needs, and that
    /// `match = "hash"` has hashes to match (`hashes_given`).
    fn check(&self, i: usize, hashes_given: bool) -> std::result::Result<(), String> {
        if self.method == Method::Lifecycle {
            // S3 Lifecycle empties a whole folder: no selection by
            // content or name, and never a sibling that shares letters.
            let folder = self
                .uri
                .strip_prefix("s3://")
                .or_else(|| self.uri.strip_prefix("gs://"))
                .map(|r| !r.contains('/') || r.ends_with('/'));
            match folder {
                None => {
                    return Err(format!(
                        "location {} ({}): method = \"lifecycle\" is for s3:// and gs:// locations",
                        i + 1,
                        self.uri
                    ));
                }
                Some(false) => {
                    return Err(format!(
                        "location {} ({}): method = \"lifecycle\" needs a folder; write it with a trailing / (a lifecycle prefix would also reach siblings that share its letters)",
                        i + 1,
                        self.uri
                    ));
                }
                Some(true) => {}
            }
            if self.match_mode != MatchMode::All
                || !self.include.is_empty()
                || !self.exclude.is_empty()
            {
                return Err(format!(
                    "location {} ({}): method = \"lifecycle\" empties the whole folder; it takes no match = \"hash\", include or exclude",
                    i + 1,
                    self.uri
                ));
            }
        }
        if self.crypto_erase && !self.uri.starts_with("s3://") {
            return Err(format!(
                "location {} ({}): crypto_erase destroys KMS keys of S3 objects; it is for s3:// locations",
                i + 1,
                self.uri
            ));
        }
        if self.crypto_erase && self.method == Method::Lifecycle {
            return Err(format!(
                "location {} ({}): crypto_erase needs every version's key, which method = \"lifecycle\" does not read; use the purge method",
                i + 1,
                self.uri
            ));
        }
        if let Some(d) = self.crypto_erase_days {
            if !self.crypto_erase {
                return Err(format!(
                    "location {} ({}): crypto_erase_days without crypto_erase = true",
                    i + 1,
                    self.uri
                ));
            }
            if !CRYPTO_ERASE_DAYS.contains(&d) {
                return Err(format!(
                    "location {} ({}): crypto_erase_days = {d}: KMS waits 7 to 30 days before it deletes a key",
                    i + 1,
                    self.uri
                ));
            }
        }
        if self.match_mode == MatchMode::Hash && !hashes_given {
            return Err(format!(
                "location {} ({}) has match = \"hash\" but no component hashes are given (nor hf_repo, ollama_model or torch_checkpoints)",
                i + 1,
                self.uri
            ));
        }
        Ok(())
    }
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

    /// The same model as Ollama resolves names: each part compared without
    /// regard to case (`server/routes.go` `getExistingName`, `strings.EqualFold`).
    pub fn is(&self, other: &OllamaName) -> bool {
        self.registry.eq_ignore_ascii_case(&other.registry)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.model.eq_ignore_ascii_case(&other.model)
            && self.tag.eq_ignore_ascii_case(&other.tag)
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

impl Resolved {
    /// Add locations a store found (a registry entry's artifact
    /// locations), checked as the manifest's own are: a system or home
    /// folder, or one inside a `[[keep]]` folder, is an input error; one
    /// listed already is not added twice. Returns the ones that cannot be
    /// traced (a local folder that does not exist), with why.
    pub fn add_found(&mut self, found: Vec<Location>) -> Result<Vec<(String, String)>> {
        let mut skipped = Vec::new();
        for loc in found {
            if self.manifest.locations.iter().any(|l| l.uri == loc.uri) {
                continue;
            }
            let by = loc.found_by.clone().unwrap_or_default();
            let t = match resolve_uri(&loc.uri, Path::new("/")) {
                Ok(t) => t,
                Err(e) => {
                    skipped.push((loc.uri.clone(), format!("{by}: {e}")));
                    continue;
                }
            };
            if let Target::Local(root) = &t {
                if let Some(why) = system_folder(root) {
                    return Err(Error::input(format!(
                        "{by} is {} , which {why}; refusing it",
                        root.display()
                    )));
                }
                if let Some(k) = self.keep.iter().find(|k| root.starts_with(k)) {
                    return Err(Error::input(format!(
                        "{by} is {}, inside the [[keep]] folder {}",
                        root.display(),
                        k.display()
                    )));
                }
            }
            self.targets.push(t);
            self.manifest.locations.push(loc);
        }
        Ok(skipped)
    }
}

/// The kinds of store a location can be in (`crate::store` implements each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    Local,
    Luks,
    S3,
    Gcs,
    Mlflow,
}

impl StoreKind {
    /// A store not on the host that traces it (a bucket): `trace
    /// --local-only` leaves it to another host, and its locations name no
    /// host.
    pub fn remote(self) -> bool {
        matches!(self, StoreKind::S3 | StoreKind::Gcs | StoreKind::Mlflow)
    }
}

impl Target {
    pub fn kind(&self) -> StoreKind {
        match self {
            Target::Local(_) => StoreKind::Local,
            Target::S3 { .. } => StoreKind::S3,
            Target::Luks(_) => StoreKind::Luks,
            Target::Gcs { .. } => StoreKind::Gcs,
            Target::Mlflow { .. } => StoreKind::Mlflow,
        }
    }
}

/// Where a location lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local directory: the canonical absolute path.
    Local(PathBuf),
    /// An S3 bucket and key prefix.
    S3 { bucket: String, prefix: String },
    /// A LUKS2 volume on a block device, erased whole by destroying its keyslots.
    Luks(PathBuf),
    /// A Google Cloud Storage bucket and object name prefix.
    Gcs { bucket: String, prefix: String },
    /// A model version in an MLflow registry (`mlflow:NAME/VERSION`).
    Mlflow { name: String, version: String },
}

/// A manifest ready to act on: locations resolved, components merged.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub base: PathBuf,
    pub profile: Profile,
    pub targets: Vec<Target>,
    /// Known components with a hash decom matches.
    pub components: Vec<Component>,
    /// Known components without one: never searched for (a residual risk).
    pub not_searched: Vec<NotSearched>,
    /// Hashes ignored on usable components (SHA-1, MD5, …).
    pub ignored_hashes: Vec<NotSearched>,
    /// The `[[keep]]` folders, canonical, in manifest order.
    pub keep: Vec<PathBuf>,
    /// The manifest file itself, where it was read from one.
    pub file: Option<PathBuf>,
    /// The `[[retain]]` files' real paths, in manifest order.
    pub retained: Vec<PathBuf>,
}

impl Resolved {
    /// The files the manifest names (`sha256sums`, `bom`, a profile given
    /// by path), as the manifest's folder resolves them: decom's own
    /// inputs, which no location ever plans.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        let m = &self.manifest;
        let profile =
            (m.profile.contains('/') || m.profile.ends_with(".toml")).then_some(&m.profile);
        m.sha256sums
            .iter()
            .chain(&m.bom)
            .chain(profile)
            .map(|f| self.base.join(f))
            .collect()
    }
}

impl Manifest {
    /// Parse TOML text strictly.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text).map_err(|e| {
            Error::input(format!("manifest {origin}: {}", one_line(&e.to_string())))
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |m: String| Err(Error::input(format!("manifest {origin}: {m}")));
        if self.model.name.trim().is_empty() {
            return bad("[model] name must not be empty".into());
        }
        if self.locations.is_empty() && self.model.mlflow.is_none() {
            return bad("no [[locations]] and no [model.mlflow]: nothing to trace".into());
        }
        let hashes_given = !self.components.is_empty()
            || self.sha256sums.is_some()
            || self.bom.is_some()
            || self.model.names_a_store();
        for (i, l) in self.locations.iter().enumerate() {
            l.check(i, hashes_given).or_else(&bad)?;
        }
        if let Some(s3) = &self.s3
            && let Err(e) = s3.concurrency().and_then(|_| s3.proof())
        {
            return bad(format!("[s3] {e}"));
        }
        if let Some(gcs) = &self.gcs {
            gcs.check().or_else(|e| bad(e.to_string()))?;
        }
        if let Some(m) = &self.model.mlflow {
            m.check().or_else(&bad)?;
        }
        if let Some(l) = self
            .locations
            .iter()
            .find(|l| l.found_by.is_none() && uri_kind(&l.uri) == StoreKind::Mlflow)
        {
            return bad(format!(
                "location {}: registry entries come from [model.mlflow], not [[locations]]",
                l.uri
            ));
        }
        if let Some(repo) = &self.model.hf_repo {
            let ok = repo.split('/').count() == 2
                && repo.split('/').all(|p| {
                    !p.is_empty()
                        && p != "."
                        && p != ".."
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                });
            if !ok {
                return bad(format!(
                    "[model] hf_repo = {repo:?} is not of the form \"org/name\""
                ));
            }
        }
        if let Some(m) = &self.model.ollama_model
            && OllamaName::parse(m).is_none()
        {
            return bad(format!(
                "[model] ollama_model = {m:?} is not of the form \"name:tag\" or \"registry/namespace/name:tag\""
            ));
        }
        for c in &self.model.torch_checkpoints {
            if c.is_empty() || c.contains('/') || c == "." || c == ".." {
                return bad(format!(
                    "[model] torch_checkpoints: {c:?} is not a file name"
                ));
            }
        }
        for r in &self.retain {
            r.check().or_else(&bad)?;
        }
        for k in &self.keep {
            if uri_kind(&k.uri).remote() {
                return bad(format!(
                    "[[keep]] {}: only local folders can be kept this way",
                    k.uri
                ));
            }
        }
        Ok(())
    }

    /// Read and parse a manifest file.
    pub fn load(path: &Path) -> Result<(Self, String)> {
        let bytes = crate::util::read_input(path, "manifest", MAX_MANIFEST)?;
        let sha = crate::hash::sha256_hex(&bytes);
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(format!("manifest {} is not UTF-8 text", path.display())))?;
        Ok((Self::parse(&text, &path.display().to_string())?, sha))
    }

    /// Resolve locations, profile and components. `base` is the manifest's
    /// directory (relative paths are taken from there).
    pub fn resolve(self, manifest_sha256: String, base: &Path) -> Result<Resolved> {
        let profile = Profile::resolve(&self.profile, base)?;
        let mut targets = Vec::new();
        for loc in &self.locations {
            let t = resolve_uri(&loc.uri, base)?;
            if let Target::Local(root) = &t
                && !loc.allow_system
                && let Some(why) = system_folder(root)
            {
                return Err(Error::input(format!(
                    "location {:?} ({}) {why}; refusing it unless the location says allow_system = true",
                    loc.uri,
                    root.display()
                )));
            }
            targets.push(t);
            for g in loc.include.iter().chain(&loc.exclude) {
                globset::Glob::new(g).map_err(|e| {
                    Error::input(format!("location {}: bad glob {g:?}: {e}", loc.uri))
                })?;
            }
        }
        for (i, a) in targets.iter().enumerate() {
            for b in &targets[..i] {
                if a == b {
                    return Err(Error::input("manifest: a location is listed twice"));
                }
            }
        }
        let mut keep = Vec::new();
        for k in &self.keep {
            match resolve_uri(&k.uri, base)? {
                Target::Local(p) => keep.push(p),
                Target::S3 { .. }
                | Target::Gcs { .. }
                | Target::Mlflow { .. }
                | Target::Luks(_) => {
                    return Err(Error::input(format!(
                        "[[keep]] {}: only local folders can be kept this way",
                        k.uri
                    )));
                }
            }
        }
        for (i, t) in targets.iter().enumerate() {
            if let Target::Local(root) = t
                && let Some(k) = keep.iter().find(|k| root.starts_with(k))
            {
                return Err(Error::input(format!(
                    "location {} ({}) lies inside the [[keep]] folder {}: nothing there could be planned",
                    i + 1,
                    self.locations[i].uri,
                    k.display()
                )));
            }
        }
        let retained = self
            .retain
            .iter()
            .map(retain::Retain::resolve)
            .collect::<Result<Vec<_>>>()?;
        let roots: Vec<(&Path, &Location)> = targets
            .iter()
            .zip(&self.locations)
            .filter_map(|(t, l)| match t {
                Target::Local(root) => Some((root.as_path(), l)),
                _ => None,
            })
            .collect();
        retain::check_not_covered(
            &retained
                .iter()
                .cloned()
                .zip(&self.retain)
                .collect::<Vec<_>>(),
            &roots,
        )?;
        let merged = components::merge(&self, base)?;
        if merged.components.is_empty()
            && !self.model.names_a_store()
            && let Some((i, l)) = self
                .locations
                .iter()
                .enumerate()
                .find(|(_, l)| l.match_mode == MatchMode::Hash)
        {
            return Err(Error::input(format!(
                "location {} ({}) has match = \"hash\" but none of the {} known component(s) has a SHA-256, SHA-384 or SHA-512 hash; nothing could match",
                i + 1,
                l.uri,
                merged.not_searched.len()
            )));
        }
        Ok(Resolved {
            manifest: self,
            manifest_sha256,
            base: base.to_path_buf(),
            profile,
            targets,
            components: merged.components,
            not_searched: merged.not_searched,
            ignored_hashes: merged.ignored_hashes,
            keep,
            file: None,
            retained,
        })
    }
}

/// Folders whose every file belongs to the system: no location lies in them.
const SYSTEM_TREES: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev",
    "/proc", "/sys",
];
/// Folders no location may be or hold as a whole (a location inside one,
/// `/var/lib/models`, `/home/ana/models`, is fine).
const SYSTEM_FOLDERS: &[&str] = &["/var", "/home", "/root", "/run", "/dev/shm"];

/// Why a (canonical) location root is a system folder, holds one, or lies
/// in one; `None` when it is none of these.
pub fn system_folder(root: &Path) -> Option<String> {
    // Shared memory is scratch space like /tmp (a tmpfs), not the system's.
    let scratch = root.starts_with("/dev/shm") && root != Path::new("/dev/shm");
    if let Some(t) = SYSTEM_TREES
        .iter()
        .find(|t| root.starts_with(t) && !scratch)
    {
        return Some(format!("lies in the system folder {t}"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let homes = std::fs::read_dir("/home")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let whole: Vec<PathBuf> = SYSTEM_FOLDERS
        .iter()
        .map(PathBuf::from)
        .chain(SYSTEM_TREES.iter().map(PathBuf::from))
        .chain(home.into_iter().filter(|h| h != Path::new("/")))
        .chain(homes)
        .collect();
    whole.iter().find(|f| f.starts_with(root)).map(|f| {
        if f == root {
            format!("is the system or home folder {}", f.display())
        } else {
            format!("holds the system or home folder {}", f.display())
        }
    })
}

/// A location's include or exclude globs as one set (`None` when there are
/// none); a bad glob is an input error naming the location.
pub fn globset(globs: &[String], uri: &str) -> Result<Option<globset::GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(
            globset::Glob::new(g)
                .map_err(|e| Error::input(format!("location {uri}: bad glob {g:?}: {e}")))?,
        );
    }
    Ok(Some(b.build().map_err(|e| {
        Error::input(format!("location {uri}: {e}"))
    })?))
}

/// The kind of store a location URI names, by its scheme alone (nothing
/// is checked or resolved): a path or `file://` URI is local.
pub fn uri_kind(uri: &str) -> StoreKind {
    if uri.starts_with("s3://") {
        StoreKind::S3
    } else if uri.starts_with("gs://") {
        StoreKind::Gcs
    } else if uri.starts_with("mlflow:") {
        StoreKind::Mlflow
    } else if uri.starts_with("luks://") {
        StoreKind::Luks
    } else {
        StoreKind::Local
    }
}

/// Turn a location URI into a target. Local paths must exist, be directories,
/// and are canonicalised (the plan records the real path).
pub fn resolve_uri(uri: &str, base: &Path) -> Result<Target> {
    let bad = |m: &str| Err(Error::input(format!("location {uri:?}: {m}")));
    if uri.trim().is_empty() {
        return bad("empty URI");
    }
    let path_str = if let Some(rest) = uri.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return bad("file:// URIs must name an absolute path (file:///srv/models)");
        }
        rest
    } else if uri.starts_with("s3://") {
        let (bucket, prefix) = crate::store::s3::spec::parse_uri(uri)?;
        return Ok(Target::S3 { bucket, prefix });
    } else if uri.starts_with("gs://") {
        let (bucket, prefix) = crate::store::gcs::spec::parse_uri(uri)?;
        return Ok(Target::Gcs { bucket, prefix });
    } else if uri.starts_with("mlflow:") {
        let (name, version) = crate::store::mlflow::spec::parse_uri(uri)?;
        return Ok(Target::Mlflow { name, version });
    } else if let Some(dev) = uri.strip_prefix("luks://") {
        if !dev.starts_with("/dev/") || crate::util::check_normalised(dev).is_err() {
            return bad(
                "luks:// URIs name a block device by its normalised path (luks:///dev/sdb)",
            );
        }
        crate::store::luks::device::block_device(Path::new(dev))
            .map_err(|m| Error::input(format!("location {uri:?}: {m}")))?;
        return Ok(Target::Luks(PathBuf::from(dev)));
    } else if let Some((scheme, _)) = uri.split_once("://") {
        return bad(&format!(
            "unsupported scheme {scheme:?} (use a path, file://, s3://, gs:// or luks:// URI)"
        ));
    } else {
        uri
    };
    if path_str.contains('\0') {
        return bad("contains a NUL byte");
    }
    let raw = Path::new(path_str);
    if !raw.is_absolute() {
        return bad(
            "must be an absolute path (a destructive tool should not depend on the current directory)",
        );
    }
    if raw.components().any(|c| c == PathComponent::ParentDir) {
        return bad("must not contain \"..\"");
    }
    let _ = base;
    let path = raw.to_path_buf();
    let canon = std::fs::canonicalize(&path)
        .map_err(|e| Error::input(format!("location {uri:?}: {}: {e}", path.display())))?;
    if !canon.is_dir() {
        return bad("is not a directory");
    }
    if canon == Path::new("/") {
        return bad("refusing to use the filesystem root as a location");
    }
    Ok(Target::Local(canon))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Manifest> {
        Manifest::parse(s, "test")
    }

    const OK: &str = r#"
profile = "nist-clear"
[model]
name = "fraud-detector"
version = "3.2.0"
[[locations]]
uri = "/srv/models/fraud-detector"
"#;

    #[test]
    fn minimal_manifest_parses() {
        let m = parse(OK).unwrap();
        assert_eq!(m.model.name, "fraud-detector");
        assert_eq!(m.locations[0].match_mode, MatchMode::All);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse(&format!("{OK}\ncolour = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        assert!(!e.contains('\n'));
        assert!(parse(&OK.replace("version =", "versoin =")).is_err());
    }

    #[test]
    fn hash_match_needs_components() {
        let e = parse(&format!("{OK}match = \"hash\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no component hashes"), "{e}");
    }

    #[test]
    fn uris_are_checked() {
        let base = Path::new("/");
        assert!(resolve_uri("s4://bucket", base).is_err());
        assert!(resolve_uri("file://relative", base).is_err());
        assert!(resolve_uri("/tmp/../etc", base).is_err());
        assert!(resolve_uri("/", base).is_err());
        assert!(resolve_uri("/definitely/not/here", base).is_err());
        assert_eq!(
            resolve_uri("file:///tmp", base).unwrap(),
            Target::Local(std::fs::canonicalize("/tmp").unwrap())
        );
    }
}
