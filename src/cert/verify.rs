//! Checking a certificate: both signatures (at the time recorded inside the
//! signed JSON), the roles and the two-person rule, the link to the approved
//! plan, and internal consistency. Each check is reported separately, so a
//! failure says exactly what failed.

use super::{Certificate, Status};
use crate::sign::{self, AllowedSigners, Role};
use ssh_key::HashAlg;
use std::path::Path;

/// What a check is about. Callers find checks by kind, never by the words
/// people read; `--json` shows [`CheckKind::name`] as `"name"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CheckKind {
    /// The signed bytes are a decom certificate.
    #[serde(rename = "certificate")]
    Parse,
    #[serde(rename = "issued time")]
    IssuedTime,
    #[serde(rename = "consistency")]
    Consistency,
    #[serde(rename = "operator signature")]
    OperatorSignature,
    #[serde(rename = "plan approval")]
    PlanApproval,
    #[serde(rename = "custodian co-signature")]
    CustodianCoSignature,
    /// A fleet certificate: every host's part, and coverage.
    #[serde(rename = "parts")]
    Parts,
    #[serde(rename = "status")]
    Status,
    /// `verify --recheck`: nothing disposed exists again.
    #[serde(rename = "recheck")]
    Recheck,
    /// `verify --recheck`: the records retained by policy are still there,
    /// unchanged, until their end date.
    #[serde(rename = "retained records")]
    Retained,
    /// `verify --tsa-certs`: each signature's RFC 3161 timestamp, and
    /// their order.
    #[serde(rename = "timestamps")]
    Timestamps,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Parse => "certificate",
            CheckKind::IssuedTime => "issued time",
            CheckKind::Consistency => "consistency",
            CheckKind::OperatorSignature => "operator signature",
            CheckKind::PlanApproval => "plan approval",
            CheckKind::CustodianCoSignature => "custodian co-signature",
            CheckKind::Parts => "parts",
            CheckKind::Status => "status",
            CheckKind::Recheck => "recheck",
            CheckKind::Retained => "retained records",
            CheckKind::Timestamps => "timestamps",
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    #[serde(rename = "name")]
    pub kind: CheckKind,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(kind: CheckKind, r: Result<String, String>) -> Check {
        match r {
            Ok(detail) => Check {
                kind,
                ok: true,
                detail,
            },
            Err(detail) => Check {
                kind,
                ok: false,
                detail,
            },
        }
    }
}

fn check(kind: CheckKind, r: Result<String, String>) -> Check {
    Check::new(kind, r)
}

/// Run every check. `cosigned`: whether the custodian's co-signature is
/// required (verify) or not yet expected (cosign).
pub fn verify(
    path: &Path,
    cert: &Certificate,
    bytes: &[u8],
    signers: &AllowedSigners,
    cosigned: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    let at = match sign::unix(&cert.issued) {
        Ok(t) => t,
        Err(e) => {
            out.push(check(CheckKind::IssuedTime, Err(e.to_string())));
            return out;
        }
    };
    let problems = cert.check();
    out.push(check(
        CheckKind::Consistency,
        if problems.is_empty() {
            Ok("totals and status follow from the artifacts".into())
        } else {
            Err(problems.join("; "))
        },
    ));
    let operator = sign::verify_file(
        path,
        bytes,
        signers,
        Role::Operator,
        Some(&cert.operator.principal),
        at,
    )
    .and_then(|p| {
        if p.key_fingerprint != cert.operator.key_fingerprint {
            Err(format!(
                "signed by {}, but the certificate names operator key {}",
                p.key_fingerprint, cert.operator.key_fingerprint
            ))
        } else {
            Ok(p)
        }
    });
    out.push(check(
        CheckKind::OperatorSignature,
        operator
            .as_ref()
            .map(|p| {
                format!(
                    "{} {} (namespace {})",
                    p.principal,
                    p.key_fingerprint,
                    sign::OPERATOR
                )
            })
            .map_err(Clone::clone),
    ));

    // The approvals recorded inside, and the approved plan when it is at hand.
    out.push(check(
        CheckKind::PlanApproval,
        approvals(path, cert, signers, at),
    ));

    if cosigned {
        let custodian = sign::verify_file(path, bytes, signers, Role::Custodian, None, at)
            .and_then(|c| {
                sign::two_person(&cert.operator.signer(), std::slice::from_ref(&c)).map(|_| c)
            });
        out.push(check(
            CheckKind::CustodianCoSignature,
            custodian.map(|p| {
                format!(
                    "{} {} (namespace {})",
                    p.principal,
                    p.key_fingerprint,
                    sign::CUSTODIAN
                )
            }),
        ));
    }
    if cert.fleet.is_some() {
        out.push(check(
            CheckKind::Parts,
            super::fleet::verify_parts(path, cert, signers),
        ));
    }
    out.push(check(CheckKind::Status, status(cert)));
    out
}

/// The status check: complete passes; pending, incomplete and a fleet
/// with parts that are not complete say what is missing.
fn status(cert: &Certificate) -> Result<String, String> {
    if let Some(f) = &cert.fleet
        && cert.status != Status::Complete
    {
        let bad: Vec<String> = f
            .hosts
            .iter()
            .map(|h| match &h.part {
                None => format!("{}: no part", h.host),
                Some(p) => format!("{}: {}", h.host, super::status_name(p.status)),
            })
            .filter(|l| !l.ends_with(": complete"))
            .collect();
        Err(format!(
            "{}: {}",
            super::status_name(cert.status),
            bad.join(", ")
        ))
    } else if cert.status == Status::Complete {
        Ok(format!(
            "complete: {} artifact(s) disposed and verified",
            cert.totals.artifacts
        ))
    } else if cert.status == Status::Pending {
        let n = cert
            .artifacts
            .iter()
            .filter(|a| a.outcome == crate::journal::Outcome::Pending)
            .count();
        Err(format!(
            "pending: {n} artifact(s) waiting on S3 (a folder delegated to S3 Lifecycle not yet empty, a KMS key not yet deleted); nothing failed (a later execute --resume completes the certificate)"
        ))
    } else if cert.status == Status::NothingFound {
        Ok("nothing found: the approved plan listed no artifact, so nothing was disposed".into())
    } else {
        let bad = cert
            .artifacts
            .iter()
            .filter(|a| a.outcome != crate::journal::Outcome::Disposed)
            .count();
        Err(format!("incomplete: {bad} artifact(s) not disposed"))
    }
}

fn approvals(
    path: &Path,
    cert: &Certificate,
    signers: &AllowedSigners,
    at: i64,
) -> Result<String, String> {
    if cert.plan.approvals.is_empty() {
        return Err("no custodian approval recorded".into());
    }
    for a in &cert.plan.approvals {
        let entry = signers
            .entries
            .iter()
            .find(|e| e.key.fingerprint(HashAlg::Sha256).to_string() == a.key_fingerprint);
        let Some(e) = entry else {
            return Err(format!(
                "approving key {} is not in the trusted signers file",
                a.key_fingerprint
            ));
        };
        signers
            .find(&e.key, Some(&a.principal), sign::CUSTODIAN, at)
            .map_err(|m| format!("approval by {}: {m}", a.principal))?;
    }
    let approvers: Vec<sign::Signer> = cert.plan.approvals.iter().map(|a| a.signer()).collect();
    sign::two_person(&cert.operator.signer(), &approvers)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let plan_path = dir.join(&cert.plan.file);
    let recorded = cert
        .plan
        .approvals
        .iter()
        .map(|a| a.principal.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match std::fs::read(&plan_path) {
        Ok(plan_bytes) => {
            let sha = crate::hash::sha256_hex(&plan_bytes);
            if sha != cert.plan.sha256 {
                return Err(format!(
                    "{} has SHA-256 {sha}, but the certificate is for plan {}",
                    plan_path.display(),
                    cert.plan.sha256
                ));
            }
            // The plan was approved before execute; its window is checked at the
            // certificate's start.
            let start = sign::unix(&cert.started).unwrap_or(at);
            let p = sign::verify_file(
                &plan_path,
                &plan_bytes,
                signers,
                Role::Custodian,
                None,
                start,
            )?;
            if !cert
                .plan
                .approvals
                .iter()
                .any(|a| a.key_fingerprint == p.key_fingerprint)
            {
                return Err(format!(
                    "the plan's signature is by {}, which the certificate does not record",
                    p.key_fingerprint
                ));
            }
            Ok(format!(
                "plan {} (sha256 {}) approved by {recorded}; signature checked",
                cert.plan.file, cert.plan.sha256
            ))
        }
        Err(_) => Ok(format!(
            "approved by {recorded} (plan file not at hand; recorded approval checked against the signers file)"
        )),
    }
}
