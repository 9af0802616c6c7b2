//! Known component hashes (ETSI EN 304 223 5.2.4-1.2), merged from three
//! sources: inline `[[components]]`, a `SHA256SUMS` file and a CycloneDX JSON
//! BOM. A name given two different hashes is an error; the same hash under
//! several names is kept once, under its first name.

use super::Manifest;
use crate::error::{Error, Result};
use crate::util::parse_sha256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub sha256: String,
    /// Size in bytes, when known: lets a hash match skip files of other sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

const MAX_LIST: u64 = 64 << 20;

pub(super) fn merge(m: &Manifest, base: &Path) -> Result<Vec<Component>> {
    let mut all: Vec<(Component, String)> = Vec::new();
    for c in &m.components {
        let sha = parse_sha256(&c.sha256)
            .map_err(|e| Error::input(format!("manifest: component {:?}: {e}", c.name)))?;
        if c.name.trim().is_empty() {
            return Err(Error::input(
                "manifest: a [[components]] entry has an empty name",
            ));
        }
        all.push((
            Component {
                name: c.name.clone(),
                sha256: sha,
                size: c.size,
            },
            "manifest".into(),
        ));
    }
    if let Some(p) = &m.sha256sums {
        let path = base.join(p);
        let text = crate::util::read_text(&path, "SHA256SUMS file", MAX_LIST)?;
        let origin = path.display().to_string();
        for c in parse_sha256sums(&text, &origin)? {
            all.push((c, origin.clone()));
        }
    }
    if let Some(p) = &m.bom {
        let path = base.join(p);
        let text = crate::util::read_text(&path, "CycloneDX BOM", MAX_LIST)?;
        let origin = path.display().to_string();
        for c in parse_cyclonedx(&text, &origin)? {
            all.push((c, origin.clone()));
        }
    }
    let mut by_name: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out: Vec<Component> = Vec::new();
    for (c, origin) in all {
        if let Some((sha, first)) = by_name.get(&c.name) {
            if *sha != c.sha256 {
                return Err(Error::input(format!(
                    "component {:?} has two different hashes: {sha} ({first}) and {} ({origin})",
                    c.name, c.sha256
                )));
            }
            continue;
        }
        by_name.insert(c.name.clone(), (c.sha256.clone(), origin));
        if let Some(existing) = out.iter_mut().find(|o| o.sha256 == c.sha256) {
            existing.size = existing.size.or(c.size);
            continue;
        }
        out.push(c);
    }
    // The same set in the same order whatever the source.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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
        let sha = parse_sha256(hash).map_err(|e| Error::input(format!("{origin}:{n}: {e}")))?;
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
            name,
            sha256: sha,
            size: None,
        });
    }
    Ok(out)
}

/// Take components of type `machine-learning-model`, `data` and `file` with a
/// SHA-256 hash from a CycloneDX 1.5/1.6 JSON BOM, nested components too.
pub fn parse_cyclonedx(text: &str, origin: &str) -> Result<Vec<Component>> {
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
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = Vec::new();
    if let Some(meta) = v.pointer("/metadata/component") {
        stack.push(meta);
    }
    if let Some(list) = v.get("components").and_then(|c| c.as_array()) {
        stack.extend(list.iter().rev());
    }
    while let Some(c) = stack.pop() {
        if let Some(children) = c.get("components").and_then(|c| c.as_array()) {
            stack.extend(children.iter().rev());
        }
        let kind = c.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !matches!(kind, "machine-learning-model" | "data" | "file") {
            continue;
        }
        let name = c
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let Some(hashes) = c.get("hashes").and_then(|h| h.as_array()) else {
            continue;
        };
        for h in hashes {
            if h.get("alg").and_then(|a| a.as_str()) != Some("SHA-256") {
                continue;
            }
            let content = h.get("content").and_then(|c| c.as_str()).unwrap_or("");
            let sha = parse_sha256(content)
                .map_err(|e| Error::input(format!("{origin}: component {name:?}: {e}")))?;
            if name.is_empty() {
                return Err(Error::input(format!(
                    "{origin}: a component with hash {sha} has no name"
                )));
            }
            out.push(Component {
                name: name.clone(),
                sha256: sha,
                size: None,
            });
        }
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
        assert_eq!(c[1].sha256, "b".repeat(64));
        assert!(parse_sha256sums(&format!("{a} model"), "t").is_err());
        assert!(parse_sha256sums("zz  x", "t").is_err());
    }
}
