//! `decom archive`: store the evidence bundle write-once (S3 Object Lock in
//! COMPLIANCE mode) or in a local folder with a hash-chained index, and
//! check an archive (`--verify URI`).

use super::records::Record;
use super::{Printer, S3Endpoint, exit};
use crate::archive;
use crate::cert::{CoSignature, Evidence};
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// The certificate to archive (its .sig files, the plan, its approval
    /// and the journal are taken from beside it).
    #[arg(required_unless_present = "verify")]
    pub certificate: Option<PathBuf>,
    /// Where: s3://bucket/prefix (object lock required) or a local folder.
    #[arg(long, value_name = "URI", required_unless_present = "verify")]
    pub to: Option<String>,
    /// Retention in days for S3 (default: the bucket's default COMPLIANCE retention).
    #[arg(long, value_name = "N")]
    pub retain_days: Option<u32>,
    /// Trusted signers (checked, rendered into the PDF, and archived).
    #[arg(long, value_name = "FILE", required_unless_present = "verify")]
    pub allowed_signers: Option<PathBuf>,
    /// The approved plan (default: the file the certificate names, beside it).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Check an archive instead: every bundle intact, the index chain unbroken
    /// (local) or every bundle locked in COMPLIANCE mode (S3).
    #[arg(long, value_name = "URI", conflicts_with_all = ["certificate", "to", "retain_days"])]
    pub verify: Option<String>,
    #[command(flatten)]
    pub s3: S3Endpoint,
}

pub fn run(a: &ArchiveArgs, p: &Printer) -> Result<u8> {
    if let Some(uri) = &a.verify {
        return verify(a, uri, p);
    }
    let (Some(cert_path), Some(to), Some(signers)) = (&a.certificate, &a.to, &a.allowed_signers)
    else {
        unreachable!("clap requires these without --verify")
    };
    let ev = Evidence::gather(cert_path, signers, CoSignature::IfPresent)?;
    let (members, about) = archive::members(&ev, a.plan.as_deref())?;
    let mtime = crate::sign::unix(&about.issued)?.max(0) as u64;
    let tar = archive::bundle(&members, mtime)?;
    let stored = match archive::local_dir(to) {
        Some(dir) => {
            if a.retain_days.is_some() {
                return Err(Error::input(
                    "--retain-days applies to s3:// archives (a local folder is protected by its hash-chained index)",
                ));
            }
            archive::store_local(&dir, &tar, &about)?
        }
        None => {
            let (bucket, prefix) = crate::store::s3::parse_uri(to)?;
            let s3 = crate::store::s3::S3::connect(&a.s3.settings())?;
            archive::s3::store(&s3, &bucket, &prefix, &tar, &about, a.retain_days)?
        }
    };
    if p.json {
        p.record(&Record::Archived(&stored));
    } else {
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        p.data(&format!(
            "{} {} ({} bytes, SHA-256 {})",
            if stored.new {
                "archived to"
            } else {
                "already archived at"
            },
            stored.location,
            stored.bytes,
            stored.sha256
        ));
        p.info(&format!("bundle: {}", names.join(", ")));
        if let Some(v) = &stored.version_id {
            p.info(&format!("version {v}"));
        }
        if let Some(u) = &stored.retain_until {
            p.info(&format!("locked in COMPLIANCE mode until {u}"));
        }
        if let Some(n) = stored.index_entry {
            p.info(&format!("index entry {n}"));
        }
    }
    Ok(exit::OK)
}

fn verify(a: &ArchiveArgs, uri: &str, p: &Printer) -> Result<u8> {
    let (n, problems, head) = match archive::local_dir(uri) {
        Some(dir) => {
            let r = archive::verify_local(&dir)?;
            (r.entries.len(), r.problems, Some(r.head))
        }
        None => {
            let (bucket, prefix) = crate::store::s3::parse_uri(uri)?;
            let s3 = crate::store::s3::S3::connect(&a.s3.settings())?;
            let (n, problems) = archive::s3::verify(&s3, &bucket, &prefix)?;
            (n, problems, None)
        }
    };
    let ok = problems.is_empty();
    if p.json {
        p.record(&Record::Archive {
            uri,
            bundles: n,
            ok,
            problems: &problems,
            head: head.as_deref(),
        });
    } else {
        for prob in &problems {
            p.data(&format!("FAIL {prob}"));
        }
        p.data(&format!(
            "{}: {n} bundle(s), {}",
            uri,
            if ok { "intact" } else { "NOT intact" }
        ));
        if let Some(h) = head {
            p.info(&format!(
                "index head {h} (keep it elsewhere to detect a truncated index)"
            ));
        }
    }
    Ok(if ok { exit::OK } else { exit::INCOMPLETE })
}
