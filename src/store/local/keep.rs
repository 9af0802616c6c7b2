//! `[[keep]]` folders: models that stay. The walk never enters them; after
//! the locations are traced, this looks there for identical copies of what
//! the plan disposes of (only files of a planned size are read), because
//! those bytes stay and the certificate must say so.

use crate::plan::RiskKind;
use crate::plan::{Artifact, Item, Risk};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// A residual risk for each planned file with an identical copy in a
/// `[[keep]]` folder. `keep` pairs each folder with the model that needs it.
pub fn identical(keep: &[(PathBuf, &str)], artifacts: &[Artifact]) -> Vec<Risk> {
    let mut planned: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut sizes = HashSet::new();
    for a in artifacts {
        if let Item::File(f) = &a.item {
            planned.entry(f.sha256.as_str()).or_default().push(&f.path);
            sizes.insert(f.size);
        }
    }
    let mut risks = Vec::new();
    if planned.is_empty() {
        return risks;
    }
    for (root, model) in keep {
        let files: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter(|e| e.metadata().is_ok_and(|m| sizes.contains(&m.len())))
            .map(|e| e.into_path())
            .collect();
        for (p, sha) in files.iter().zip(crate::hash::hash_files(&files)) {
            let Ok(sha) = sha else { continue };
            for subject in planned.get(sha.as_str()).into_iter().flatten() {
                risks.push(Risk {
                    kind: RiskKind::SharedContent,
                    subject: subject.to_string(),
                    detail: format!("identical bytes kept: needed by {model} ({})", p.display()),
                });
            }
        }
    }
    risks
}
