//! `decom verify`: check a certificate, say exactly what failed, and print
//! the `ssh-keygen -Y verify` commands that check the same signatures
//! without decom.

use super::{Printer, exit};
use crate::cert::Certificate;
use crate::error::Result;
use crate::sign::{self, AllowedSigners, Role};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The certificate (its .sig files beside it).
    pub certificate: PathBuf,
    /// Trusted signers (OpenSSH allowed_signers with namespaces= roles).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: PathBuf,
    /// Also re-scan every location and prove that no disposed artifact
    /// exists again (at its path or key, or by content where matched by hash).
    #[arg(long)]
    pub recheck: bool,
    /// The approved plan, for --recheck (default: the file the certificate names, beside it).
    #[arg(long, value_name = "FILE", requires = "recheck")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub s3: super::S3Endpoint,
}

/// The approved plan a certificate records: `explicit`, or the file it names
/// beside the certificate; its SHA-256 must be the recorded one.
pub fn recorded_plan(
    cert_path: &Path,
    cert: &Certificate,
    explicit: Option<&Path>,
) -> Result<(crate::plan::Plan, Vec<u8>, PathBuf)> {
    let dir = cert_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(Path::new(&cert.plan.file).file_name().unwrap_or_default()));
    let (plan, bytes) = crate::plan::Plan::load(&path)?;
    if crate::hash::sha256_hex(&bytes) != cert.plan.sha256 {
        return Err(crate::error::Error::input(format!(
            "{}: not the plan this certificate records (SHA-256 differs); give the approved plan with --plan",
            path.display()
        )));
    }
    Ok((plan, bytes, path))
}

pub fn run(a: &VerifyArgs, p: &Printer) -> Result<u8> {
    let (cert, bytes) = Certificate::load(&a.certificate)?;
    let signers = AllowedSigners::load(&a.allowed_signers)?;
    let mut checks = crate::cert::verify::verify(&a.certificate, &cert, &bytes, &signers, true);
    if a.recheck {
        let (plan, _, _) = recorded_plan(&a.certificate, &cert, a.plan.as_deref())?;
        let progress = p.progress();
        let back = crate::cert::recheck::recheck(&cert, &plan, &a.s3.settings(), &progress)?;
        checks.push(crate::cert::verify::Check {
            name: "recheck",
            ok: back.is_empty(),
            detail: if back.is_empty() {
                format!(
                    "re-scanned {} location(s): no disposed artifact exists again",
                    plan.locations.len()
                )
            } else {
                format!("reappeared: {}", back.join("; "))
            },
        });
    }
    let ok = checks.iter().all(|c| c.ok);
    let cosigner = cosigner(&a.certificate, &cert, &bytes, &signers);
    let commands = ssh_keygen_commands(
        &a.certificate,
        &a.allowed_signers,
        &cert,
        cosigner.as_deref(),
    );
    if p.json {
        for c in &checks {
            p.record("check", serde_json::to_value(c).expect("checks serialize"));
        }
        p.record(
            "verdict",
            serde_json::json!({"ok": ok, "certificate": a.certificate, "ssh_keygen": commands}),
        );
    } else {
        for c in &checks {
            p.data(&format!(
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        p.data(if ok {
            "verified: complete, valid and co-signed"
        } else {
            "NOT verified"
        });
        p.info("the same signatures, checked without decom:");
        for c in &commands {
            p.info(&format!("  {c}"));
        }
    }
    Ok(if ok { exit::OK } else { exit::INCOMPLETE })
}

/// The principal whose valid co-signature sits beside the certificate.
pub fn cosigner(
    cert_path: &Path,
    cert: &Certificate,
    bytes: &[u8],
    signers: &AllowedSigners,
) -> Option<String> {
    let sig = std::fs::read(sign::sig_path(cert_path, Role::Custodian)).ok()?;
    let at = sign::unix(&cert.issued).ok()?;
    sign::verify_bytes(bytes, &sig, signers, Role::Custodian, None, at)
        .ok()
        .map(|p| p.principal)
}

/// Shell-quote a word for POSIX sh.
pub fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn ssh_keygen_commands(
    cert_path: &Path,
    signers: &Path,
    cert: &Certificate,
    cosigner: Option<&str>,
) -> Vec<String> {
    let when = sign::ssh_time(&cert.issued);
    let file = cert_path.display().to_string();
    let mut out = vec![format!(
        "ssh-keygen -Y verify -f {} -I {} -n {} -s {} -Overify-time={when} < {}",
        sh(&signers.display().to_string()),
        sh(&cert.operator.principal),
        sign::OPERATOR,
        sh(&sign::sig_path(cert_path, Role::Operator)
            .display()
            .to_string()),
        sh(&file)
    )];
    let custodian_sig = sh(&sign::sig_path(cert_path, Role::Custodian)
        .display()
        .to_string());
    let principal = match cosigner {
        Some(p) => sh(p),
        // Let ssh-keygen name the principal the signers file gives this key.
        None => format!(
            "\"$(ssh-keygen -Y find-principals -f {} -n {} -s {custodian_sig} -Overify-time={when})\"",
            sh(&signers.display().to_string()),
            sign::CUSTODIAN
        ),
    };
    out.push(format!(
        "ssh-keygen -Y verify -f {} -I {principal} -n {} -s {custodian_sig} -Overify-time={when} < {}",
        sh(&signers.display().to_string()),
        sign::CUSTODIAN,
        sh(&file)
    ));
    out
}
