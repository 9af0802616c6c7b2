//! The certificate for people: a PDF/A-3b document (typst) and a
//! self-contained HTML page, both drawn from one [`Report`] built from the
//! signed `certificate.json` and the result of checking its signatures.
//! The exact bytes of the certificate, its signatures and the trusted
//! signers file travel inside (PDF attachments, HTML data links), so the
//! document for people carries the machine record it was drawn from and
//! `ssh-keygen -Y verify` can check what is extracted from it.
//!
//! Rendering reads the certificate and never writes it.

mod html;
#[cfg(feature = "pdf")]
mod pdf;

use crate::cert::verify::{Check, CheckKind};
use crate::cert::{Certificate, Evidence, Naming, Party, Status};
use crate::error::Result;
use crate::journal::Outcome;
use crate::util::human_bytes;
use serde::Serialize;

pub use crate::cert::Attachment;

pub use html::html;
#[cfg(feature = "pdf")]
pub use pdf::pdf;

/// Without the `pdf` feature there is no PDF engine in the binary.
#[cfg(not(feature = "pdf"))]
pub fn pdf(_: &Report, _: &[Attachment]) -> crate::error::Result<Vec<u8>> {
    Err(crate::error::Error::input(
        "this decom was built without the pdf feature; use --html, or a default build",
    ))
}

/// Everything the documents show, already worded; both renderers only lay
/// it out.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub certificate_id: String,
    pub certificate_sha256: String,
    pub status: String,
    pub complete: bool,
    pub verified: bool,
    pub issued: String,
    /// The model as people name it (name and version).
    pub model: String,
    /// The first page's answers: which model, approved by whom and when,
    /// what was destroyed by which method, what is pending and until when,
    /// what was retained by policy, the residual risks, and whether every
    /// signature and timestamp verified.
    pub glance: Vec<Field>,
    pub summary: Vec<Field>,
    /// Each sanitization method and technique (NIST SP 800-88 Rev. 2, IEEE 2883).
    pub sanitization: Vec<SanitizedView>,
    /// Records kept by policy.
    pub retained: Vec<RetainedView>,
    pub parties: Vec<PartyView>,
    pub nist: Vec<Field>,
    pub standards: Vec<Field>,
    pub checks: Vec<CheckView>,
    /// A fleet certificate: one row per host (empty otherwise).
    pub hosts: Vec<HostView>,
    pub locations: Vec<LocationView>,
    pub risks: Vec<RiskView>,
    pub artifacts: Vec<ArtifactView>,
    pub attachments: Vec<AttachmentView>,
    pub verify_commands: Vec<String>,
    pub tool: String,
}

/// A labelled value (a row of a two-column table).
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub label: String,
    pub value: String,
}

fn field(label: impl Into<String>, value: impl Into<String>) -> Field {
    Field {
        label: label.into(),
        value: value.into(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SanitizedView {
    pub method: String,
    pub technique: String,
    pub artifacts: u64,
    pub size: String,
    pub validation: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetainedView {
    pub what: String,
    pub path: String,
    /// The path wrapped for the PDF.
    pub path_lines: Vec<String>,
    pub sha256: String,
    pub reason: String,
    pub until: String,
    pub owner: String,
    pub found: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RiskView {
    pub kind: String,
    /// The subject, wrapped for the PDF.
    pub subject_lines: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartyView {
    pub role: String,
    pub principal: String,
    pub fingerprint: String,
    pub person: Vec<Field>,
    pub signature: String,
    pub signature_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocationView {
    pub index: u32,
    pub uri: String,
    pub uri_lines: Vec<String>,
    pub medium: String,
    pub artifacts: u64,
    pub size: String,
    pub outcomes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub host: String,
    pub status: String,
    /// The host's part is complete.
    pub complete: bool,
    pub artifacts: u64,
    pub size: String,
    pub part: String,
    pub operator: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    pub id: u32,
    pub location: u32,
    pub kind: String,
    pub path: String,
    pub path_lines: Vec<String>,
    pub size: String,
    pub sha256: Option<String>,
    pub method: String,
    pub category: String,
    pub outcome: String,
    pub ok: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    pub name: String,
    pub description: String,
    pub size: u64,
    pub sha256: String,
}

/// Characters per line of a path in the PDF's monospaced cells; they match
/// the column widths in `certificate.typ` (7 pt DejaVu Sans Mono).
pub const PATH_COLUMN: usize = 70;
pub const LOCATION_COLUMN: usize = 48;
pub const RISK_COLUMN: usize = 30;

/// Break a path or URI into lines of at most `width` characters, after a
/// `/` where possible. The PDF shows the lines with hard breaks, so text
/// copied out of it has no invisible break characters in it.
pub fn wrap_path(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut parts: Vec<String> = Vec::new();
    for (i, p) in s.split('/').enumerate() {
        parts.push(if i == 0 {
            p.to_string()
        } else {
            format!("/{p}")
        });
    }
    for part in parts {
        if cur.chars().count() + part.chars().count() > width && !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        cur.push_str(&part);
        while cur.chars().count() > width {
            let cut: String = cur.chars().take(width).collect();
            cur = cur.chars().skip(width).collect();
            lines.push(cut);
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

fn outcome_counts(by: &std::collections::BTreeMap<String, crate::cert::Count>) -> String {
    if by.is_empty() {
        return "none".into();
    }
    by.iter()
        .map(|(k, c)| format!("{} {k}", c.artifacts))
        .collect::<Vec<_>>()
        .join(", ")
}

fn person(p: &Party) -> Vec<Field> {
    let d = &p.details;
    [
        ("Name", &d.name),
        ("Title", &d.title),
        ("Organisation", &d.organisation),
        ("Location", &d.location),
        ("Contact", &d.contact),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| field(k, v.clone())))
    .collect()
}

fn signature_line(c: Option<&Check>, what: &str) -> (String, bool) {
    match c {
        Some(c) if c.ok => (format!("{what}: valid"), true),
        Some(c) => (format!("{what}: NOT VALID ({})", c.detail), false),
        None => (format!("{what}: not checked"), false),
    }
}

impl Report {
    /// Word the certificate and its checks. `attachments` are the files
    /// carried inside (from [`Evidence::attachments`]); the `ssh-keygen`
    /// commands name them as they are extracted. A certificate that does not
    /// parse cannot be rendered: that is a failed verification.
    pub fn new(ev: &Evidence, attachments: &[Attachment]) -> Result<Report> {
        let cert = ev.require_certificate()?;
        let model = if cert.model.version.is_empty() {
            cert.model.name.clone()
        } else {
            format!("{} {}", cert.model.name, cert.model.version)
        };
        Ok(Report {
            title: format!("Disposal certificate: {model}"),
            certificate_id: cert.id.clone(),
            certificate_sha256: crate::hash::sha256_hex(ev.bytes()),
            status: match cert.status {
                Status::Complete => "COMPLETE",
                Status::NothingFound => "NOTHING FOUND",
                Status::Incomplete => "INCOMPLETE",
                Status::Pending => "PENDING",
            }
            .into(),
            complete: cert.status == Status::Complete,
            verified: ev.verified(),
            issued: cert.issued.clone(),
            glance: glance(ev, cert, &model),
            summary: summary(cert, &model),
            sanitization: cert
                .sanitization
                .iter()
                .map(|r| SanitizedView {
                    method: r.method.clone(),
                    technique: r.technique.clone(),
                    artifacts: r.artifacts,
                    size: human_bytes(r.bytes),
                    validation: r.validation.clone(),
                })
                .collect(),
            retained: cert
                .retained
                .iter()
                .map(|r| RetainedView {
                    what: r.record.what.clone(),
                    path: r.record.path.clone(),
                    path_lines: wrap_path(&r.record.path, RISK_COLUMN),
                    sha256: r.record.sha256.clone(),
                    reason: r.record.reason.clone(),
                    until: r.record.until.clone(),
                    owner: r.record.owner.clone(),
                    found: match r.unchanged {
                        Some(true) => "present and unchanged".to_string(),
                        _ => r.found.clone(),
                    },
                })
                .collect(),
            model,
            parties: parties(ev, cert),
            nist: nist(cert),
            standards: standards(cert),
            checks: ev
                .checks()
                .iter()
                .map(|c| CheckView {
                    name: c.kind.name().to_string(),
                    ok: c.ok,
                    detail: c.detail.clone(),
                })
                .collect(),
            hosts: hosts(cert),
            locations: cert
                .locations
                .iter()
                .map(|l| LocationView {
                    index: l.index,
                    uri: l.uri.clone(),
                    uri_lines: wrap_path(&l.uri, LOCATION_COLUMN),
                    medium: l.medium.clone(),
                    artifacts: l.totals.artifacts,
                    size: human_bytes(l.totals.bytes),
                    outcomes: outcome_counts(&l.totals.by_outcome),
                })
                .collect(),
            risks: cert
                .residual_risks
                .iter()
                .map(|r| RiskView {
                    kind: r.kind.to_string(),
                    subject_lines: wrap_path(&r.subject, RISK_COLUMN),
                    detail: r.detail.clone(),
                })
                .collect(),
            artifacts: cert.artifacts.iter().map(artifact).collect(),
            attachments: attachments
                .iter()
                .map(|a| AttachmentView {
                    name: a.name.clone(),
                    description: a.description.clone(),
                    size: a.bytes.len() as u64,
                    sha256: crate::hash::sha256_hex(&a.bytes),
                })
                .collect(),
            verify_commands: ev.ssh_keygen_commands(Naming::Attached),
            tool: format!("{} {}", crate::TOOL_NAME, crate::TOOL_VERSION),
        })
    }
}

/// The first page's answers, each in one line an auditor can read.
fn glance(ev: &Evidence, cert: &Certificate, model: &str) -> Vec<Field> {
    let custodian = match &cert.custodian.details.name {
        Some(n) => format!("{n} ({})", cert.custodian.principal),
        None => cert.custodian.principal.clone(),
    };
    let approved_at = match ev.stamp(crate::cert::evidence::Step::Approval) {
        Some(t) => format!("timestamped {} by {}", crate::util::rfc3339(t.time), t.tsa),
        None => format!(
            "before the disposal began ({}); no trusted timestamp checked",
            cert.started
        ),
    };
    let destroyed = if cert.sanitization.is_empty() {
        outcome_counts(&cert.totals.by_outcome)
    } else {
        cert.sanitization
            .iter()
            .map(|r| {
                format!(
                    "{}: {} ({} artifact(s), {})",
                    r.method,
                    r.technique,
                    r.artifacts,
                    human_bytes(r.bytes)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    // A few named, the rest counted: the page stays one page.
    const NAMED: usize = 5;
    let pending_all = cert
        .artifacts
        .iter()
        .filter(|a| a.outcome == Outcome::Pending);
    let mut pending: Vec<String> = pending_all
        .clone()
        .take(NAMED)
        .map(|a| match &a.reason {
            Some(r) => format!("{} ({r})", a.path),
            None => a.path.clone(),
        })
        .collect();
    let more = pending_all.count().saturating_sub(NAMED);
    if more > 0 {
        pending.push(format!("and {more} more (see Artifacts)"));
    }
    let retained: Vec<String> = cert
        .retained
        .iter()
        .map(|r| {
            format!(
                "{} until {} ({})",
                r.record.what, r.record.until, r.record.reason
            )
        })
        .collect();
    let checks = ev.checks();
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.kind.name())
        .collect();
    let stamped = ev.check(CheckKind::Timestamps).is_some();
    let or_none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join("; ")
        }
    };
    vec![
        field("Model", model),
        field("Approved by", format!("{custodian}, {approved_at}")),
        field("Destroyed", destroyed),
        field("Pending", or_none(pending)),
        field("Retained by policy", or_none(retained)),
        field(
            "Residual risks",
            if cert.residual_risks.is_empty() {
                "none recorded".to_string()
            } else {
                format!("{} (listed below)", cert.residual_risks.len())
            },
        ),
        field(
            "Verified",
            match (failed.is_empty(), stamped) {
                (true, true) => "every signature and every timestamp verified".to_string(),
                (true, false) => {
                    "every signature verified; timestamps not checked (render --tsa-certs)"
                        .to_string()
                }
                (false, _) => format!("NOT VERIFIED: {}", failed.join(", ")),
            },
        ),
    ]
}

/// The first table: the model, the status in words, when and where.
fn summary(cert: &Certificate, model: &str) -> Vec<Field> {
    let mut summary = vec![
        field("Model", model),
        field(
            "Status",
            match cert.status {
                Status::Complete => "COMPLETE: every planned artifact disposed and verified",
                Status::NothingFound => {
                    "NOTHING FOUND: the approved plan listed no artifact; nothing was disposed"
                }
                Status::Incomplete => "INCOMPLETE: not every planned artifact was disposed",
                Status::Pending => {
                    "PENDING: S3 Lifecycle has not yet emptied a delegated folder; nothing failed"
                }
            },
        ),
    ];
    if let Some(o) = &cert.model.owner {
        summary.push(field("Model owner", o.clone()));
    }
    if let Some(r) = &cert.model.hf_repo {
        summary.push(field("Hugging Face repository", r.clone()));
    }
    summary.extend([
        field("Certificate", cert.id.clone()),
        field("Disposal started", cert.started.clone()),
        field("Disposal finished", cert.finished.clone()),
        field("Issued", cert.issued.clone()),
        field("Host", cert.host.clone()),
        field(
            "Artifacts",
            format!(
                "{} ({}): {}",
                cert.totals.artifacts,
                human_bytes(cert.totals.bytes),
                outcome_counts(&cert.totals.by_outcome)
            ),
        ),
        field(
            "Plan",
            format!(
                "{} (SHA-256 {}), created {}, profile {}",
                cert.plan.file, cert.plan.sha256, cert.plan.created, cert.plan.profile.name
            ),
        ),
    ]);
    summary
}

/// The operator and the custodian, each with what their signatures showed.
fn parties(ev: &Evidence, cert: &Certificate) -> Vec<PartyView> {
    let line = |kind: CheckKind| signature_line(ev.check(kind), kind.name());
    let (op_sig, op_ok) = line(CheckKind::OperatorSignature);
    let (cu_sig, cu_ok) = line(CheckKind::CustodianCoSignature);
    let (ap_sig, ap_ok) = line(CheckKind::PlanApproval);
    vec![
        PartyView {
            role: "Operator (performed the disposal)".into(),
            principal: cert.operator.principal.clone(),
            fingerprint: cert.operator.key_fingerprint.clone(),
            person: person(&cert.operator),
            signature: op_sig,
            signature_ok: op_ok,
        },
        PartyView {
            role: "Data Custodian (approved the plan, validates)".into(),
            principal: cert.custodian.principal.clone(),
            fingerprint: cert.custodian.key_fingerprint.clone(),
            person: person(&cert.custodian),
            signature: format!("{ap_sig}; {cu_sig}"),
            signature_ok: ap_ok && cu_ok,
        },
    ]
}

/// NIST SP 800-88 Rev. 1 Appendix G's fields, in its order.
fn nist(cert: &Certificate) -> Vec<Field> {
    let n = &cert.nist_sp_800_88;
    vec![
        field("Person performing", n.performer.clone()),
        field("Media / location", n.media.clone()),
        field("Method type", n.method_type.clone()),
        field("Method used", n.method_used.clone()),
        field("Tool", n.tool.clone()),
        field("Verification method", n.verification_method.clone()),
        field("Validator", n.validator.clone()),
    ]
}

/// Each standard's provision and the evidence for it.
fn standards(cert: &Certificate) -> Vec<Field> {
    cert.standards
        .iter()
        .map(|s| {
            let evidence = if s.evidence == "nist_sp_800_88" {
                "the Appendix G fields above (certificate field nist_sp_800_88)".to_string()
            } else {
                s.evidence.clone()
            };
            field(format!("{} {}", s.standard, s.provision), evidence)
        })
        .collect()
}

/// A fleet certificate's hosts, one row each (none for one host).
fn hosts(cert: &Certificate) -> Vec<HostView> {
    cert.fleet
        .iter()
        .flat_map(|f| &f.hosts)
        .map(|h| match &h.part {
            Some(p) => HostView {
                host: h.host.clone(),
                status: format!(
                    "{}{}",
                    crate::cert::status_name(p.status),
                    if p.s3 { " (with S3)" } else { "" }
                ),
                complete: p.status == Status::Complete,
                artifacts: p.totals.artifacts,
                size: human_bytes(p.totals.bytes),
                part: format!("{} sha256:{}", p.file, &p.sha256[..16]),
                operator: p.operator.principal.clone(),
            },
            None => HostView {
                host: h.host.clone(),
                status: "NO PART".into(),
                complete: false,
                artifacts: 0,
                size: String::new(),
                part: String::new(),
                operator: String::new(),
            },
        })
        .collect()
}

fn artifact(a: &crate::cert::CertArtifact) -> ArtifactView {
    ArtifactView {
        id: a.id,
        location: a.location,
        kind: a.kind.to_string(),
        path: a.path.clone(),
        path_lines: wrap_path(&a.path, PATH_COLUMN),
        size: human_bytes(a.size),
        sha256: a.sha256.clone(),
        method: a.method.clone(),
        category: a.sanitization.category.to_string(),
        outcome: a.outcome.to_string(),
        ok: a.outcome == Outcome::Disposed && a.verification.verified,
        reason: a.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::wrap_path;

    #[test]
    fn paths_wrap_after_slashes_and_long_names_are_cut() {
        assert_eq!(wrap_path("/a/b", 10), ["/a/b"]);
        assert_eq!(
            wrap_path("/srv/models/m/x.bin", 12),
            ["/srv/models", "/m/x.bin"]
        );
        let blob = format!("/hub/blobs/{}", "f".repeat(30));
        let lines = wrap_path(&blob, 12);
        assert!(lines.iter().all(|l| l.chars().count() <= 12), "{lines:?}");
        assert_eq!(lines.concat(), blob);
        // Multi-byte characters are never split.
        let s = "/données/modèle-ü".repeat(3);
        assert_eq!(wrap_path(&s, 5).concat(), s);
        assert_eq!(wrap_path("", 5), [""]);
    }
}
