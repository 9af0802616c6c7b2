//! `[[retain]]`: records kept deliberately (a model card, technical
//! documentation, evaluation reports, logs) for a stated reason until a
//! stated date. Trace never plans them; the plan records their SHA-256 and
//! size for the custodian to approve; the certificate lists them as
//! retained by policy; `verify --recheck` checks they are still there,
//! unchanged, until their end date.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One `[[retain]]` entry as the manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retain {
    /// An absolute path (or `file://` URI) of one regular file.
    pub uri: String,
    /// What it is: "model card", "technical documentation", …
    pub what: String,
    /// Why it is kept, e.g. "EU AI Act Art. 18: technical documentation, 10 years".
    pub reason: String,
    /// The end of the retention, `YYYY-MM-DD`.
    pub until: String,
    /// Who answers for it.
    pub owner: String,
}

/// The date format of `until`.
const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// `until` as a date, or why it is not one.
pub fn until_date(until: &str) -> std::result::Result<time::Date, String> {
    time::Date::parse(until, DATE)
        .map_err(|_| format!("until = {until:?} is not a date of the form YYYY-MM-DD"))
}

impl Retain {
    /// The checks the manifest's schema cannot make.
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        let at = |m: String| format!("[[retain]] {}: {m}", self.uri);
        for (key, v) in [
            ("what", &self.what),
            ("reason", &self.reason),
            ("owner", &self.owner),
        ] {
            if v.trim().is_empty() {
                return Err(at(format!("{key} must not be empty")));
            }
        }
        until_date(&self.until).map_err(at)?;
        Ok(())
    }

    /// The file's real path: absolute, normalised, a regular file and not
    /// a symbolic link (a link is never followed: name the file itself).
    pub fn resolve(&self) -> Result<PathBuf> {
        let bad = |m: &str| Error::input(format!("[[retain]] {}: {m}", self.uri));
        let path = self.uri.strip_prefix("file://").unwrap_or(&self.uri);
        if self.uri.contains("://") && !self.uri.starts_with("file://") {
            return Err(bad(
                "only local files can be retained this way (a path or file:// URI)",
            ));
        }
        if !path.starts_with('/') {
            return Err(bad("must be an absolute path"));
        }
        crate::util::check_normalised(path).map_err(|m| bad(&m))?;
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| bad(&format!("cannot be read: {e}")))?;
        if meta.file_type().is_symlink() {
            return Err(bad(
                "is a symbolic link; links are never followed: name the file it points to",
            ));
        }
        if !meta.is_file() {
            return Err(bad("is not a regular file (name each file to retain)"));
        }
        let real = std::fs::canonicalize(path).map_err(|e| bad(&e.to_string()))?;
        Ok(real)
    }
}

/// A location covering a retained file must exclude it: otherwise trace
/// could plan what policy keeps. `roots` are the local locations' real
/// roots beside their manifest entries.
pub(super) fn check_not_covered(
    retained: &[(PathBuf, &Retain)],
    roots: &[(&Path, &super::Location)],
) -> Result<()> {
    for (file, r) in retained {
        for (root, loc) in roots {
            let Ok(rel) = file.strip_prefix(root) else {
                continue;
            };
            let excluded = super::globset(&loc.exclude, &loc.uri)?.is_some_and(|g| g.is_match(rel));
            if !excluded {
                return Err(Error::input(format!(
                    "[[retain]] {}: location {} covers it; add {:?} to that location's exclude, or retain something else",
                    r.uri,
                    loc.uri,
                    rel.display().to_string()
                )));
            }
        }
    }
    Ok(())
}

/// A retained file as trace found it: the manifest's entry with the file's
/// real path, SHA-256 and size, for the custodian to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retained {
    pub uri: String,
    pub what: String,
    pub reason: String,
    pub until: String,
    pub owner: String,
    /// The real path hashed.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl Retained {
    /// Hash the file at its real path `path`.
    pub fn of(entry: &Retain, path: &Path) -> Result<Retained> {
        let (sha256, size) = crate::hash::hash_file(path)
            .map_err(|e| Error::input(format!("[[retain]] {}: cannot be read: {e}", entry.uri)))?;
        Ok(Retained {
            uri: entry.uri.clone(),
            what: entry.what.clone(),
            reason: entry.reason.clone(),
            until: entry.until.clone(),
            owner: entry.owner.clone(),
            path: path.display().to_string(),
            sha256,
            size,
        })
    }

    /// Whether the file is still there with the bytes approved: `Ok` with
    /// what was found, or the reason it is not.
    pub fn check(&self) -> std::result::Result<String, String> {
        match crate::hash::hash_file(Path::new(&self.path)) {
            Ok((sha, _)) if sha == self.sha256 => Ok(format!(
                "{} ({}) present and unchanged (SHA-256 {})",
                self.path, self.what, self.sha256
            )),
            Ok((sha, _)) => Err(format!(
                "{} ({}) has changed: SHA-256 {sha}, approved {}",
                self.path, self.what, self.sha256
            )),
            Err(e) => Err(format!(
                "{} ({}) is no longer there: {e}",
                self.path, self.what
            )),
        }
    }
}
