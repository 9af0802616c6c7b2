//! `decom archive`: store the evidence bundle write-once (S3 Object Lock in
//! COMPLIANCE mode) or in a local folder with a hash-chained index, and
//! check an archive (`--verify URI`).

use super::{Printer, S3Endpoint, exit};
use crate::archive::{self, About, Member};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::render::Report;
use crate::sign::{self, AllowedSigners, Role};
use clap::Args;
use std::path::{Path, PathBuf};

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

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    crate::util::read_input(path, what, 4 << 30)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Gather the bundle: certificate and signatures, the approved plan (checked
/// against the hash the certificate records) and its approvals, the journal,
/// the trusted signers, and the PDF rendered from the same bytes.
fn members(a: &ArchiveArgs, cert_path: &Path, signers_path: &Path) -> Result<(Vec<Member>, About)> {
    let (cert, bytes) = Certificate::load(cert_path)?;
    let signers = AllowedSigners::load(signers_path)?;
    let dir = cert_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (_, plan_bytes, plan_path) =
        super::verify::recorded_plan(cert_path, &cert, a.plan.as_deref())?;
    let mut m = vec![Member {
        name: name_of(cert_path),
        bytes: bytes.clone(),
    }];
    for role in [Role::Operator, Role::Custodian] {
        let p = sign::sig_path(cert_path, role);
        if p.exists() {
            m.push(Member {
                name: name_of(&p),
                bytes: read(&p, "signature")?,
            });
        }
    }
    m.push(Member {
        name: name_of(&plan_path),
        bytes: plan_bytes,
    });
    let approval = sign::sig_path(&plan_path, Role::Custodian);
    m.push(Member {
        name: name_of(&approval),
        bytes: read(&approval, "plan approval")?,
    });
    let journal = crate::dispose::journal_path(dir);
    m.push(Member {
        name: name_of(&journal),
        bytes: read(&journal, "journal")?,
    });
    let cosigned = sign::sig_path(cert_path, Role::Custodian).exists();
    let checks = crate::cert::verify::verify(cert_path, &cert, &bytes, &signers, cosigned);
    let files = super::render::attachments(cert_path, &bytes, signers_path)?;
    let commands = super::verify::ssh_keygen_commands(
        Path::new(&name_of(cert_path)),
        Path::new("allowed_signers"),
        &cert,
        super::verify::cosigner(cert_path, &cert, &bytes, &signers).as_deref(),
    );
    let report = Report::new(&cert, &bytes, &checks, &files, commands);
    // The signers file as attached to the PDF (read once).
    let signers_file = files
        .iter()
        .find(|f| f.name == "allowed_signers")
        .expect("render::attachments always attaches the signers file");
    m.push(Member {
        name: signers_file.name.clone(),
        bytes: signers_file.bytes.clone(),
    });
    m.push(Member {
        name: Path::new(&name_of(cert_path))
            .with_extension("pdf")
            .display()
            .to_string(),
        bytes: crate::render::pdf(&report, &files)?,
    });
    let about = About {
        certificate: cert.id.clone(),
        model: report.summary[0].1.clone(),
        status: report.status.to_lowercase(),
        issued: cert.issued.clone(),
    };
    Ok((m, about))
}

pub fn run(a: &ArchiveArgs, p: &Printer) -> Result<u8> {
    if let Some(uri) = &a.verify {
        return verify(a, uri, p);
    }
    let (Some(cert_path), Some(to), Some(signers)) = (&a.certificate, &a.to, &a.allowed_signers)
    else {
        unreachable!("clap requires these without --verify")
    };
    let (members, about) = members(a, cert_path, signers)?;
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
            let (bucket, prefix) = crate::s3::parse_uri(to)?;
            let s3 = crate::s3::S3::connect(&a.s3.settings())?;
            archive::s3::store(&s3, &bucket, &prefix, &tar, &about, a.retain_days)?
        }
    };
    if p.json {
        p.record(
            "archived",
            serde_json::to_value(&stored).expect("serializes"),
        );
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
            let (bucket, prefix) = crate::s3::parse_uri(uri)?;
            let s3 = crate::s3::S3::connect(&a.s3.settings())?;
            let (n, problems) = archive::s3::verify(&s3, &bucket, &prefix)?;
            (n, problems, None)
        }
    };
    let ok = problems.is_empty();
    if p.json {
        p.record(
            "archive",
            serde_json::json!({"uri": uri, "bundles": n, "ok": ok, "problems": problems, "head": head}),
        );
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
