//! Known component hashes (ETSI EN 304 223 5.2.4-1.2), merged from three
//! sources: inline `[[components]]`, a `SHA256SUMS` file and a CycloneDX JSON
//! BOM. A component is keyed by its BOM `bom-ref`, else by name and version,
//! so two versions of one model are two components; one key given two
//! different hashes of one algorithm is an error.
//!
//! decom matches SHA-256, SHA-384 and SHA-512. A component with none of them
//! (no hash, or only SHA-1 / MD5 / another algorithm) cannot be searched
//! for: it is kept in [`Merged::not_searched`] with the reason, so trace
//! reports it and the plan carries it as a residual risk, never dropped
//! silently.

use super::Manifest;
use crate::error::{Error, Result};
use crate::hash::{Digests, Extra};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The BOM's `bom-ref`, which identifies the component in its BOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha384: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// Size in bytes, when known: lets a hash match skip files of other sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The hash algorithms decom matches content by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    Sha256,
    Sha384,
    Sha512,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Sha256, Alg::Sha384, Alg::Sha512];

    /// The name CycloneDX gives it (`hashes[].alg`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Sha256 => "SHA-256",
            Alg::Sha384 => "SHA-384",
            Alg::Sha512 => "SHA-512",
        }
    }

    fn from_name(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == s)
    }

    fn hex_len(self) -> usize {
        match self {
            Alg::Sha256 => 64,
            Alg::Sha384 => 96,
            Alg::Sha512 => 128,
        }
    }

    /// Lowercase hex of the right length, or why not.
    pub fn parse(self, s: &str) -> std::result::Result<String, String> {
        let t = s.trim();
        if t.len() != self.hex_len() || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a {} digest ({} hex digits)",
                self.name(),
                self.hex_len()
            ));
        }
        Ok(t.to_ascii_lowercase())
    }
}

impl Component {
    /// How the plan and certificate name it: `name` or `name@version`.
    pub fn label(&self) -> String {
        match self.version.as_deref() {
            Some(v) if !v.is_empty() => format!("{}@{v}", self.name),
            _ => self.name.clone(),
        }
    }

    pub fn hash(&self, alg: Alg) -> Option<&str> {
        match alg {
            Alg::Sha256 => self.sha256.as_deref(),
            Alg::Sha384 => self.sha384.as_deref(),
            Alg::Sha512 => self.sha512.as_deref(),
        }
    }

    fn hash_mut(&mut self, alg: Alg) -> &mut Option<String> {
        match alg {
            Alg::Sha256 => &mut self.sha256,
            Alg::Sha384 => &mut self.sha384,
            Alg::Sha512 => &mut self.sha512,
        }
    }

    fn searchable(&self) -> bool {
        Alg::ALL.iter().any(|a| self.hash(*a).is_some())
    }

    fn key(&self) -> String {
        match &self.bom_ref {
            Some(r) => format!("bom-ref {r}"),
            None => self.label(),
        }
    }

    fn named(name: &str) -> Component {
        Component {
            name: name.to_string(),
            version: None,
            bom_ref: None,
            sha256: None,
            sha384: None,
            sha512: None,
            size: None,
        }
    }
}

/// A known component decom could not search for, or a hash it ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotSearched {
    /// `name@version` (or the bom-ref when the component has no name).
    pub component: String,
    /// The file it came from.
    pub origin: String,
    pub reason: String,
}

/// The merged known components.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Components with at least one hash decom matches.
    pub components: Vec<Component>,
    /// Components with no usable hash: not searched for at all.
    pub not_searched: Vec<NotSearched>,
    /// Hashes of usable components that decom ignored (SHA-1, MD5, …).
    pub ignored_hashes: Vec<NotSearched>,
}

/// What a BOM or list gave for one component, before merging.
struct Parsed {
    component: Component,
    origin: String,
    /// Algorithms present that decom does not match.
    unusable: Vec<String>,
}

const MAX_LIST: u64 = 64 << 20;

pub(super) fn merge(m: &Manifest, base: &Path) -> Result<Merged> {
    let mut all: Vec<Parsed> = Vec::new();
    for c in &m.components {
        let bad = |e: String| Error::input(format!("manifest: component {:?}: {e}", c.name));
        if c.name.trim().is_empty() {
            return Err(Error::input(
                "manifest: a [[components]] entry has an empty name",
            ));
        }
        let mut component = c.clone();
        for alg in Alg::ALL {
            if let Some(h) = component.hash_mut(alg) {
                *h = alg.parse(h).map_err(bad)?;
            }
        }
        if !component.searchable() {
            return Err(bad("give sha256, sha384 or sha512".into()));
        }
        all.push(Parsed {
            component,
            origin: "manifest".into(),
            unusable: Vec::new(),
        });
    }
    if let Some(p) = &m.sha256sums {
        let path = base.join(p);
        let text = crate::util::read_text(&path, "SHA256SUMS file", MAX_LIST)?;
        let origin = path.display().to_string();
        for component in parse_sha256sums(&text, &origin)? {
            all.push(Parsed {
                component,
                origin: origin.clone(),
                unusable: Vec::new(),
            });
        }
    }
    if let Some(p) = &m.bom {
        let path = base.join(p);
        let text = crate::util::read_text(&path, "CycloneDX BOM", MAX_LIST)?;
        let origin = path.display().to_string();
        all.extend(parse_cyclonedx(&text, &origin)?);
    }

    let mut merged = Merged::default();
    // key -> (component, origin of each algorithm's hash)
    let mut by_key: BTreeMap<String, (Component, HashMap<Alg, String>)> = BTreeMap::new();
    for p in all {
        let label = p.component.label();
        if !p.component.searchable() {
            let reason = match p.unusable.as_slice() {
                [] => "no hash: decom matches SHA-256, SHA-384 or SHA-512".to_string(),
                [t] if t.starts_with("type ") => format!(
                    "a component of {t}: decom takes machine-learning-model, data and file components as the model's"
                ),
                u => format!(
                    "only {}: decom matches SHA-256, SHA-384 or SHA-512",
                    u.join(", ")
                ),
            };
            merged.not_searched.push(NotSearched {
                component: label,
                origin: p.origin,
                reason,
            });
            continue;
        }
        for alg in &p.unusable {
            merged.ignored_hashes.push(NotSearched {
                component: label.clone(),
                origin: p.origin.clone(),
                reason: format!("{alg} ignored; matched by its other hashes"),
            });
        }
        let (have, origins) = by_key
            .entry(p.component.key())
            .or_insert_with(|| (Component::named(&p.component.name), HashMap::new()));
        if have.version.is_none() {
            have.version = p.component.version.clone();
        }
        if have.bom_ref.is_none() {
            have.bom_ref = p.component.bom_ref.clone();
        }
        have.size = have.size.or(p.component.size);
        for alg in Alg::ALL {
            let Some(new) = p.component.hash(alg) else {
                continue;
            };
            match have.hash(alg) {
                Some(old) if old != new => {
                    return Err(Error::input(format!(
                        "component {label:?} has two different {} hashes: {old} ({}) and {new} ({})",
                        alg.name(),
                        origins[&alg],
                        p.origin
                    )));
                }
                Some(_) => {}
                None => {
                    *have.hash_mut(alg) = Some(new.to_string());
                    origins.insert(alg, p.origin.clone());
                }
            }
        }
    }
    merged.components = by_key.into_values().map(|(c, _)| c).collect();
    // The same set in the same order whatever the source.
    merged
        .components
        .sort_by(|a, b| (&a.name, &a.version, &a.bom_ref).cmp(&(&b.name, &b.version, &b.bom_ref)));
    Ok(merged)
}

/// The known components indexed for matching content: which digests a read
/// must compute, and the component a set of digests names (the first in
/// order when several share bytes).
pub struct Known {
    by_hash: HashMap<(Alg, String), String>,
    /// Component sizes, when every component's size is known.
    sizes: Option<HashSet<u64>>,
    extra: Extra,
}

impl Known {
    pub fn new(components: &[Component]) -> Known {
        let mut by_hash = HashMap::new();
        let mut extra = Extra::default();
        for c in components {
            for alg in Alg::ALL {
                if let Some(h) = c.hash(alg) {
                    by_hash
                        .entry((alg, h.to_string()))
                        .or_insert_with(|| c.label());
                    extra.sha384 |= alg == Alg::Sha384;
                    extra.sha512 |= alg == Alg::Sha512;
                }
            }
        }
        let sizes = components
            .iter()
            .map(|c| c.size)
            .collect::<Option<HashSet<u64>>>();
        Known {
            by_hash,
            sizes,
            extra,
        }
    }

    /// The digests besides SHA-256 a read must compute.
    pub fn extra(&self) -> Extra {
        self.extra
    }

    /// Whether a file of this size could be a known component.
    pub fn size_may_match(&self, size: u64) -> bool {
        self.sizes.as_ref().is_none_or(|s| s.contains(&size))
    }

    /// The component whose hash one of these digests is.
    pub fn find(&self, d: &Digests) -> Option<&str> {
        [
            (Alg::Sha256, Some(&d.sha256)),
            (Alg::Sha384, d.sha384.as_ref()),
            (Alg::Sha512, d.sha512.as_ref()),
        ]
        .into_iter()
        .find_map(|(alg, h)| self.by_hash.get(&(alg, h?.clone())))
        .map(String::as_str)
    }

    /// The component with this SHA-256 (S3 checksums are SHA-256).
    pub fn find_sha256(&self, sha256: &str) -> Option<&str> {
        self.by_hash
            .get(&(Alg::Sha256, sha256.to_string()))
            .map(String::as_str)
    }
}

/// Parse the format `sha256sum` writes: `HASH  name` (text mode) or
/// `HASH *name` (binary mode); blank lines and `#` comments are skipped.
/// Escaped names (a leading backslash) are unescaped as GNU coreutils does.
pub fn parse_sha256sums(text: &str, origin: &str) -> Result<Vec<Component>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim_end_matches('\r');
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        let (escaped, t) = match t.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let bad = || {
            Error::input(format!(
                "{origin}:{n}: expected \"<sha256>  <name>\" or \"<sha256> *<name>\""
            ))
        };
        if t.len() < 66 {
            return Err(bad());
        }
        let (hash, rest) = t.split_at(64);
        let sha = Alg::Sha256
            .parse(hash)
            .map_err(|e| Error::input(format!("{origin}:{n}: {e}")))?;
        let name = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let name = if escaped {
            name.replace("\\n", "\n")
                .replace("\\r", "\r")
                .replace("\\\\", "\\")
        } else {
            name.to_string()
        };
        out.push(Component {
            sha256: Some(sha),
            ..Component::named(&name)
        });
    }
    Ok(out)
}

/// Take the components of type `machine-learning-model`, `data` and `file`
/// from a CycloneDX 1.5, 1.6 or 1.7 JSON BOM, nested ones too, each with
/// its name, version, bom-ref and hashes. A component without a usable hash
/// is returned too (the merge reports it); one that only groups others
/// (it has nested components and no hash) is not a file and is skipped.
fn parse_cyclonedx(text: &str, origin: &str) -> Result<Vec<Parsed>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::input(format!("{origin}: not valid JSON: {e}")))?;
    if v.get("bomFormat").and_then(|f| f.as_str()) != Some("CycloneDX") {
        return Err(Error::input(format!(
            "{origin}: not a CycloneDX BOM (bomFormat is not \"CycloneDX\")"
        )));
    }
    let spec = v.get("specVersion").and_then(|s| s.as_str()).unwrap_or("");
    if !matches!(spec, "1.5" | "1.6" | "1.7") {
        return Err(Error::input(format!(
            "{origin}: CycloneDX specVersion {spec:?} is not supported (1.5 or later needed for ML-BOMs)"
        )));
    }
    let text_of = |c: &serde_json::Value, k: &str| {
        c.get(k)
            .and_then(|n| n.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = Vec::new();
    if let Some(meta) = v.pointer("/metadata/component") {
        stack.push(meta);
    }
    if let Some(list) = v.get("components").and_then(|c| c.as_array()) {
        stack.extend(list.iter().rev());
    }
    while let Some(c) = stack.pop() {
        let children = c.get("components").and_then(|c| c.as_array());
        if let Some(children) = children {
            stack.extend(children.iter().rev());
        }
        let kind = c.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let hashes = c
            .get("hashes")
            .and_then(|h| h.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !matches!(kind, "machine-learning-model" | "data" | "file") {
            // Another type with hashes (a library, a framework) is said,
            // never dropped without a word: the plan names it as not searched.
            if !hashes.is_empty() {
                let name = text_of(c, "name")
                    .or_else(|| text_of(c, "bom-ref"))
                    .unwrap_or_else(|| "(unnamed)".into());
                out.push(Parsed {
                    component: Component {
                        version: text_of(c, "version"),
                        ..Component::named(&name)
                    },
                    origin: origin.to_string(),
                    unusable: vec![format!("type {kind:?}")],
                });
            }
            continue;
        }
        if hashes.is_empty() && children.is_some_and(|c| !c.is_empty()) {
            continue;
        }
        let bom_ref = text_of(c, "bom-ref");
        let name = text_of(c, "name")
            .or_else(|| bom_ref.clone())
            .unwrap_or_else(|| "(unnamed)".into());
        let mut component = Component {
            version: text_of(c, "version"),
            bom_ref,
            ..Component::named(&name)
        };
        let mut unusable = Vec::new();
        for h in hashes {
            let alg_name = h.get("alg").and_then(|a| a.as_str()).unwrap_or("(none)");
            let Some(alg) = Alg::from_name(alg_name) else {
                if !unusable.iter().any(|u| u == alg_name) {
                    unusable.push(alg_name.to_string());
                }
                continue;
            };
            let content = h.get("content").and_then(|c| c.as_str()).unwrap_or("");
            let hex = alg.parse(content).map_err(|e| {
                Error::input(format!("{origin}: component {:?}: {e}", component.label()))
            })?;
            *component.hash_mut(alg) = Some(hex);
        }
        out.push(Parsed {
            component,
            origin: origin.to_string(),
            unusable,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_text_and_binary_modes() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let text = format!("{a}  model.safetensors\n{b} *tokenizer.json\n\n# comment\n");
        let c = parse_sha256sums(&text, "t").unwrap();
        assert_eq!(c[0].name, "model.safetensors");
        assert_eq!(c[1].name, "tokenizer.json");
        assert_eq!(c[1].sha256.as_deref(), Some("b".repeat(64).as_str()));
        assert!(parse_sha256sums(&format!("{a} model"), "t").is_err());
        assert!(parse_sha256sums("zz  x", "t").is_err());
    }
}
