//! Archiving the evidence for years: the bundle (certificate, its
//! signatures, the approved plan and its approval, the journal, the trusted
//! signers, the PDF) as one deterministic tar named by its SHA-256.
//!
//! - `s3://bucket/prefix`: the bucket must have S3 Object Lock; the bundle is
//!   written in COMPLIANCE mode with a retain-until date, so the server
//!   itself refuses to delete or shorten it (write once, read many).
//! - a local folder: `bundles/<sha256>.tar` plus `index.jsonl`, an
//!   append-only index whose entries chain by hash (each names the hash of
//!   the one before and its own), so a removed, reordered or edited entry,
//!   an altered bundle, or a bundle without an entry is detected by
//!   [`verify_local`].

use crate::cert::Evidence;
use crate::cert::evidence::SIGNERS_ATTACHMENT;
use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::render::Report;
use crate::sign::{self, Role};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const INDEX: &str = "index.jsonl";
pub const BUNDLES: &str = "bundles";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One file of a bundle.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Facts about the bundle recorded in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct About {
    pub certificate: String,
    pub model: String,
    pub status: String,
    pub issued: String,
}

/// Gather the bundle of a certificate's evidence: the certificate and its
/// signatures, the approved plan (checked against the hash the certificate
/// records; `explicit` or the file it names beside it) and its approval, the
/// journal, the trusted signers, and the PDF rendered from the same bytes.
pub fn members(ev: &Evidence, explicit_plan: Option<&Path>) -> Result<(Vec<Member>, About)> {
    let cert = ev.require_certificate()?;
    let (_, plan_bytes, plan_path) = ev.approved_plan(explicit_plan)?;
    let read = |p: &Path, what: &str| crate::util::read_input(p, what, 4 << 30);
    let files = ev.attachments()?;
    let report = Report::new(ev, &files)?;
    // The certificate and the signatures beside it, as attached to the PDF.
    let (signers_file, signed): (Vec<_>, Vec<_>) =
        files.iter().partition(|f| f.name == SIGNERS_ATTACHMENT);
    let mut m: Vec<Member> = signed
        .iter()
        .map(|f| Member {
            name: f.name.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    m.push(Member {
        name: name_of(&plan_path),
        bytes: plan_bytes,
    });
    let approval = sign::sig_path(&plan_path, Role::Custodian);
    m.push(Member {
        name: name_of(&approval),
        bytes: read(&approval, "plan approval")?,
    });
    match &cert.fleet {
        // A fleet certificate: the parts it vouches for (each host's
        // journal stays with its part on that host).
        Some(f) => {
            let dir = ev.files().folder();
            for p in f.hosts.iter().filter_map(|h| h.part.as_ref()) {
                for name in [p.file.clone(), format!("{}.operator.sig", p.file)] {
                    let bytes = read(&dir.join(&name), "part certificate")?;
                    m.push(Member { name, bytes });
                }
            }
        }
        None => {
            let journal = ev.files().journal();
            m.push(Member {
                name: name_of(journal),
                bytes: read(journal, "journal")?,
            });
        }
    }
    m.extend(signers_file.iter().map(|f| Member {
        name: f.name.clone(),
        bytes: f.bytes.clone(),
    }));
    m.push(Member {
        name: Path::new(&name_of(ev.files().certificate()))
            .with_extension("pdf")
            .display()
            .to_string(),
        bytes: crate::render::pdf(&report, &files)?,
    });
    let about = About {
        certificate: cert.id.clone(),
        model: report.model.clone(),
        status: report.status.to_lowercase(),
        issued: cert.issued.clone(),
    };
    Ok((m, about))
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Deterministic tar (ustar, members in the given order, fixed owner, mode
/// and time), so the same evidence always has the same name.
pub fn bundle(members: &[Member], mtime: u64) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(m.bytes.len() as u64);
        h.set_mode(0o444);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &m.name, m.bytes.as_slice())
            .map_err(|e| Error::input(format!("cannot add {} to the bundle: {e}", m.name)))?;
    }
    b.into_inner()
        .map_err(|e| Error::input(format!("cannot finish the bundle: {e}")))
}

pub fn bundle_name(sha256: &str) -> String {
    format!("{sha256}.tar")
}

/// One line of the local index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub bundle: String,
    pub sha256: String,
    pub bytes: u64,
    #[serde(flatten)]
    pub about: About,
    /// `entry` of the previous line (zeros for the first).
    pub prev: String,
    /// SHA-256 of this line serialized with `entry` empty.
    pub entry: String,
}

impl Entry {
    fn digest(&self) -> String {
        let mut e = self.clone();
        e.entry = String::new();
        sha256_hex(&serde_json::to_vec(&e).expect("entries serialize"))
    }
}

/// What an archive run stored.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub location: String,
    pub sha256: String,
    pub bytes: u64,
    /// False when the same bundle was already there (nothing written).
    pub new: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_entry: Option<u64>,
}

fn lock(file: &std::fs::File, path: &Path) -> Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        Error::input(format!(
            "{}: another decom archive is writing this index",
            path.display()
        ))
    })
}

fn read_index(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

/// Store `tar` in the local archive folder `dir` and append its index entry.
pub fn store_local(dir: &Path, tar: &[u8], about: &About) -> Result<Stored> {
    crate::util::ensure_dir(dir, "archive folder")?;
    let sha = sha256_hex(tar);
    let bundles = dir.join(BUNDLES);
    std::fs::create_dir_all(&bundles).map_err(|e| Error::io(&bundles, e))?;
    let rel = format!("{BUNDLES}/{}", bundle_name(&sha));
    let target = dir.join(&rel);
    let index_path = dir.join(INDEX);
    let mut index = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&index_path)
        .map_err(|e| Error::io(&index_path, e))?;
    lock(&index, &index_path)?;
    // The chain must be intact before it is extended.
    let report = verify_local(dir)?;
    if let Some(p) = report.problems.first() {
        return Err(Error::input(format!(
            "archive {}: the index does not verify ({p}); refusing to extend it",
            dir.display()
        )));
    }
    let entries = report.entries;
    if let Some(e) = entries.iter().find(|e| e.sha256 == sha) {
        return Ok(Stored {
            location: target.display().to_string(),
            sha256: sha,
            bytes: tar.len() as u64,
            new: false,
            version_id: None,
            retain_until: None,
            index_entry: Some(e.seq),
        });
    }
    match crate::util::write_new(&target, tar) {
        Ok(()) => {}
        Err(_) if std::fs::read(&target).is_ok_and(|b| sha256_hex(&b) == sha) => {}
        Err(e) => return Err(e),
    }
    let mut e = Entry {
        seq: entries.len() as u64 + 1,
        time: crate::util::now_rfc3339(),
        bundle: rel,
        sha256: sha.clone(),
        bytes: tar.len() as u64,
        about: about.clone(),
        prev: entries
            .last()
            .map_or_else(|| GENESIS.to_string(), |l| l.entry.clone()),
        entry: String::new(),
    };
    e.entry = e.digest();
    let mut line = serde_json::to_vec(&e).expect("entries serialize");
    line.push(b'\n');
    index
        .write_all(&line)
        .and_then(|_| index.sync_data())
        .map_err(|err| Error::io(&index_path, err))?;
    Ok(Stored {
        location: target.display().to_string(),
        sha256: sha,
        bytes: tar.len() as u64,
        new: true,
        version_id: None,
        retain_until: None,
        index_entry: Some(e.seq),
    })
}

/// The result of checking a local archive.
#[derive(Debug, Default)]
pub struct LocalReport {
    pub entries: Vec<Entry>,
    pub problems: Vec<String>,
    /// `entry` of the last line: record it elsewhere to detect a truncated index.
    pub head: String,
}

/// Check the chain of `dir/index.jsonl` and every bundle it names, and that
/// no bundle is missing from it.
pub fn verify_local(dir: &Path) -> Result<LocalReport> {
    if !dir.is_dir() {
        return Err(Error::input(format!(
            "archive folder {}: not a directory",
            dir.display()
        )));
    }
    let mut r = LocalReport {
        head: GENESIS.to_string(),
        ..Default::default()
    };
    let mut prev = GENESIS.to_string();
    for (n, line) in read_index(&dir.join(INDEX))? {
        let e: Entry = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(err) => {
                r.problems
                    .push(format!("{INDEX} line {n}: not an index entry ({err})"));
                continue;
            }
        };
        if e.seq != n as u64 {
            r.problems.push(format!(
                "{INDEX} line {n}: sequence number {} (an entry was removed or reordered)",
                e.seq
            ));
        }
        if e.prev != prev {
            r.problems.push(format!(
                "{INDEX} line {n}: does not chain to the entry before it (removed, reordered or edited)"
            ));
        }
        if e.digest() != e.entry {
            r.problems.push(format!(
                "{INDEX} line {n}: its content does not match its hash (edited)"
            ));
        }
        let expected = format!("{BUNDLES}/{}", bundle_name(&e.sha256));
        if e.bundle != expected {
            r.problems.push(format!(
                "{INDEX} line {n}: bundle {} is not named by its hash",
                e.bundle
            ));
        }
        match std::fs::read(dir.join(&e.bundle)) {
            Ok(b) if sha256_hex(&b) == e.sha256 => {}
            Ok(_) => r
                .problems
                .push(format!("{}: content does not match its hash", e.bundle)),
            Err(err) => r
                .problems
                .push(format!("{}: cannot be read ({err})", e.bundle)),
        }
        prev = e.entry.clone();
        r.entries.push(e);
    }
    r.head = prev;
    let bundles = dir.join(BUNDLES);
    if let Ok(rd) = std::fs::read_dir(&bundles) {
        let mut names: Vec<String> = rd
            .filter_map(|d| d.ok())
            .map(|d| format!("{BUNDLES}/{}", d.file_name().to_string_lossy()))
            .collect();
        names.sort();
        for name in names {
            if !r.entries.iter().any(|e| e.bundle == name) {
                r.problems
                    .push(format!("{name}: not in {INDEX} (its entry was removed)"));
            }
        }
    }
    Ok(r)
}

/// Where a local archive is: a plain path or `file://` URL.
pub fn local_dir(uri: &str) -> Option<PathBuf> {
    if uri.starts_with("s3://") {
        None
    } else {
        Some(PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri)))
    }
}

pub mod s3;
