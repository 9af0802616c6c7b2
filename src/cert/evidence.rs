//! The evidence of one certificate, assembled once for `verify`, `cosign`,
//! `render` and `archive`: the exact bytes, the signatures beside them, the
//! trusted signers file, every check, the co-signer, the files carried inside
//! a rendering and the `ssh-keygen -Y verify` commands that check the same
//! signatures without decom.
//!
//! Signatures are checked over the raw bytes **before** the certificate is
//! parsed: a certificate with any byte changed is a failed verification
//! ([`Evidence::verified`] is false), whether or not it still parses. Input
//! errors are a file that cannot be read, a bad signers file, and bytes that
//! are no certificate with no operator signature beside them (a wrong file).

use super::files::RunFiles;
use super::verify::{self, Check, CheckKind};
use super::{Certificate, MAX_CERT};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::sign::{self, AllowedSigners, Role};
use std::path::{Path, PathBuf};

/// The largest trusted signers file decom reads.
const MAX_SIGNERS: u64 = 16 << 20;

/// Whether the custodian's co-signature is part of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoSignature {
    /// `verify`: a complete certificate is co-signed.
    Required,
    /// `render`, `archive`: checked when it exists.
    IfPresent,
    /// `cosign`: not there yet, and not looked at.
    NotYet,
}

/// How the `ssh-keygen` commands name the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// As the paths were given (for `decom verify`).
    AsGiven,
    /// As the attachments are named once extracted from a PDF or bundle.
    Attached,
}

/// A file carried inside a rendering or bundle, byte for byte.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub description: String,
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

/// Name of the trusted signers file inside renderings and bundles.
pub const SIGNERS_ATTACHMENT: &str = "allowed_signers";

#[derive(Debug)]
pub struct Evidence {
    files: RunFiles,
    bytes: Vec<u8>,
    certificate: Option<Certificate>,
    checks: Vec<Check>,
    cosigner: Option<String>,
    signers_path: PathBuf,
    signers_bytes: Vec<u8>,
    signers: AllowedSigners,
    /// The timestamps `check_timestamps` verified, by step.
    stamps: Vec<(Step, crate::timestamp::Stamp)>,
}

/// A signed step of the disposal that an RFC 3161 timestamp can date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Approval,
    Execution,
    CoSignature,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Approval => "approval",
            Step::Execution => "execution",
            Step::CoSignature => "co-signature",
        }
    }
}

impl Evidence {
    /// Read the certificate at `path` and the signers file, and run every
    /// check. Errors only when a file cannot be read or the signers file is
    /// not valid; everything about the certificate is a [`Check`].
    pub fn gather(path: &Path, signers_path: &Path, cosig: CoSignature) -> Result<Evidence> {
        let files = RunFiles::of_certificate(path);
        let bytes = crate::util::read_input(path, "certificate", MAX_CERT)?;
        let signers_bytes = crate::util::read_input(signers_path, "allowed signers", MAX_SIGNERS)?;
        let signers = AllowedSigners::parse(
            &String::from_utf8_lossy(&signers_bytes),
            &signers_path.display().to_string(),
        )?;
        let origin = path.display().to_string();

        // The raw bytes first: does the operator's signature match them?
        let armored = sign::read_sig(path, Role::Operator);
        let signed = armored.is_ok();
        let raw = armored
            .and_then(|armored| sign::check_signature(&bytes, &armored, Role::Operator))
            .map_err(|m| format!("{}: {m}", files.signature(Role::Operator).display()));
        let mut ev = Evidence {
            files,
            bytes,
            certificate: None,
            checks: Vec::new(),
            cosigner: None,
            signers_path: signers_path.to_path_buf(),
            signers_bytes,
            signers,
            stamps: Vec::new(),
        };
        let cert = match Certificate::parse(&ev.bytes, &origin) {
            Ok(c) => c,
            // Neither a certificate nor signed as one: a wrong input file.
            Err(e) if !signed => return Err(e),
            Err(e) => {
                ev.checks.push(Check::new(
                    CheckKind::OperatorSignature,
                    raw.map(|_| "matches these bytes".to_string()),
                ));
                ev.checks
                    .push(Check::new(CheckKind::Parse, Err(e.to_string())));
                return Ok(ev);
            }
        };
        let cosigned = match cosig {
            // A host's part is co-signed as part of its fleet certificate.
            CoSignature::Required if cert.part.is_some() => {
                ev.files.signature(Role::Custodian).exists()
            }
            CoSignature::Required => true,
            CoSignature::IfPresent => ev.files.signature(Role::Custodian).exists(),
            CoSignature::NotYet => false,
        };
        let mut checks = verify::verify(path, &cert, &ev.bytes, &ev.signers, cosigned);
        if cosig == CoSignature::NotYet {
            checks.retain(|c| c.kind != CheckKind::Status);
        }
        ev.cosigner = cosigned
            .then(|| cosigner(path, &cert, &ev.bytes, &ev.signers))
            .flatten();
        ev.checks = checks;
        ev.certificate = Some(cert);
        Ok(ev)
    }

    /// Every check passed.
    pub fn verified(&self) -> bool {
        self.certificate.is_some() && self.checks.iter().all(|c| c.ok)
    }

    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The first failed check, if any.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }

    pub fn check(&self, kind: CheckKind) -> Option<&Check> {
        self.checks.iter().find(|c| c.kind == kind)
    }

    /// Add a check made elsewhere (`verify --recheck`).
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The parsed certificate, or `None` when its bytes do not parse.
    pub fn certificate(&self) -> Option<&Certificate> {
        self.certificate.as_ref()
    }

    /// The parsed certificate, or a failed verification naming why not.
    pub fn require_certificate(&self) -> Result<&Certificate> {
        self.certificate.as_ref().ok_or_else(|| {
            let why = self
                .first_failure()
                .map(|c| format!("{}: {}", c.kind, c.detail))
                .unwrap_or_default();
            Error::Verification(format!(
                "{}: NOT verified: {why}",
                self.files.certificate().display()
            ))
        })
    }

    /// The trusted signers the checks used.
    pub fn signers(&self) -> &AllowedSigners {
        &self.signers
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn files(&self) -> &RunFiles {
        &self.files
    }

    /// The principal whose valid co-signature sits beside the certificate.
    pub fn cosigner(&self) -> Option<&str> {
        self.cosigner.as_deref()
    }

    /// The approved plan the certificate records: `explicit`, or the file
    /// it names beside the certificate; its SHA-256 must be the recorded
    /// one. Returns the plan, its bytes and its path.
    pub fn approved_plan(&self, explicit: Option<&Path>) -> Result<(Plan, Vec<u8>, PathBuf)> {
        let cert = self.require_certificate()?;
        let path = explicit.map(Path::to_path_buf).unwrap_or_else(|| {
            self.files
                .folder()
                .join(Path::new(&cert.plan.file).file_name().unwrap_or_default())
        });
        let (plan, bytes) = Plan::load(&path)?;
        if crate::hash::sha256_hex(&bytes) != cert.plan.sha256 {
            return Err(Error::input(format!(
                "{}: not the plan this certificate records (SHA-256 differs); give the approved plan with --plan",
                path.display()
            )));
        }
        Ok((plan, bytes, path))
    }

    /// The plan's approval beside the certificate (`plan.json.custodian.sig`),
    /// where the certificate parses.
    fn approval_signature(&self) -> Option<PathBuf> {
        let cert = self.certificate()?;
        let plan = self
            .files
            .folder()
            .join(Path::new(&cert.plan.file).file_name()?);
        Some(sign::sig_path(&plan, Role::Custodian))
    }

    /// `verify --tsa-certs`: each signature's RFC 3161 timestamp
    /// (`SIG.tsr`) verifies over the signature's bytes against the
    /// certificates of `trust`, and the times run in order: the approval,
    /// then the execution, then the co-signature. Equal times pass (a TSA
    /// that stamps whole seconds can give two steps one second); a later
    /// step stamped earlier fails. Every signature present needs its
    /// timestamp.
    pub fn check_timestamps(&mut self, trust: &Path) -> Result<()> {
        let trust = crate::timestamp::Trust::load(trust)?;
        let mut steps = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        match self.approval_signature() {
            Some(a) if a.exists() => steps.push((Step::Approval, a)),
            _ => seen.push(
                "approval: its signature is not beside the certificate, so its timestamp was not checked"
                    .into(),
            ),
        }
        steps.push((Step::Execution, self.files.signature(Role::Operator)));
        steps.push((Step::CoSignature, self.files.signature(Role::Custodian)));
        let mut wrong: Vec<String> = Vec::new();
        let mut last: Option<(Step, time::OffsetDateTime)> = None;
        let mut stamps = Vec::new();
        for (step, sig) in steps {
            let Ok(sig_bytes) = std::fs::read(&sig) else {
                continue;
            };
            let name = step.name();
            let tsr = sign::tsr_path(&sig);
            let Ok(token) = std::fs::read(&tsr) else {
                wrong.push(format!(
                    "{name}: no timestamp ({} is missing)",
                    tsr.display()
                ));
                continue;
            };
            match crate::timestamp::verify(&token, &sig_bytes, &trust) {
                Ok(stamp) => {
                    let at = crate::util::rfc3339(stamp.time);
                    if let Some((before, t)) = last
                        && stamp.time < t
                    {
                        wrong.push(format!(
                            "{name} stamped {at}, before the {} ({}): the order is reversed",
                            before.name(),
                            crate::util::rfc3339(t)
                        ));
                    }
                    seen.push(format!("{name} {at} by {}", stamp.tsa));
                    last = Some((step, stamp.time));
                    stamps.push((step, stamp));
                }
                Err(why) => wrong.push(format!("{name} ({}): {why}", tsr.display())),
            }
        }
        let ok = wrong.is_empty();
        self.push(Check::new(
            CheckKind::Timestamps,
            if ok {
                Ok(seen.join("; "))
            } else {
                Err(wrong.join("; "))
            },
        ));
        if ok {
            self.stamps = stamps;
        }
        Ok(())
    }

    /// The verified timestamp of a step (none until
    /// [`Evidence::check_timestamps`] passed).
    pub fn stamp(&self, step: Step) -> Option<&crate::timestamp::Stamp> {
        self.stamps.iter().find(|(s, _)| *s == step).map(|(_, t)| t)
    }

    /// `verify --recheck`: trace the approved plan's locations again (a
    /// host's part: only its own, which are on this machine) and add the
    /// recheck's check; then look at each record retained by policy whose
    /// end date has not passed. `plan` is the approved plan's path when it
    /// is not the file the certificate names beside it.
    pub fn recheck(
        &mut self,
        plan: Option<&Path>,
        s3: &crate::store::s3::Settings,
        progress: &dyn crate::progress::Progress,
    ) -> Result<()> {
        let cert = self.require_certificate()?;
        if cert.fleet.is_some() {
            return Err(Error::input(
                "a fleet certificate is rechecked host by host: on each host, decom verify parts/certificate.HOST.json --recheck --plan PLAN",
            ));
        }
        let (plan, _, _) = self.approved_plan(plan)?;
        let plan = match &cert.part {
            Some(p) => plan.part(&crate::plan::Part {
                host: p.host.clone(),
                s3: p.s3,
            })?,
            None => plan,
        };
        let back = super::recheck::recheck(cert, &plan, s3, progress)?;
        let retained = (!cert.retained.is_empty()).then(|| retained_now(&cert.retained));
        self.push(Check::new(
            CheckKind::Recheck,
            if back.is_empty() {
                Ok(format!(
                    "re-scanned {} location(s): no disposed artifact exists again",
                    plan.locations.len()
                ))
            } else {
                Err(format!("reappeared: {}", back.join("; ")))
            },
        ));
        if let Some(r) = retained {
            self.push(Check::new(CheckKind::Retained, r));
        }
        Ok(())
    }

    /// The files a rendering carries: the certificate, the signatures that
    /// exist beside it, and the trusted signers file, read once.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let cert_path = self.files.certificate();
        let mut out = vec![Attachment {
            name: file_name(cert_path),
            description: "the signed disposal certificate (authoritative record)".into(),
            mime: "application/json",
            bytes: self.bytes.clone(),
        }];
        for (role, what) in [
            (
                Role::Operator,
                "operator signature (SSHSIG, namespace decom-operator)",
            ),
            (
                Role::Custodian,
                "custodian co-signature (SSHSIG, namespace decom-custodian)",
            ),
        ] {
            let p = self.files.signature(role);
            attach(&mut out, &p, what, "text/plain")?;
            attach(
                &mut out,
                &sign::tsr_path(&p),
                "RFC 3161 timestamp over the signature above (openssl ts -verify -data SIG -in TSR)",
                "application/timestamp-reply",
            )?;
        }
        // The approval's timestamp, with the signature it covers.
        if let Some(sig) = self.approval_signature()
            && sign::tsr_path(&sig).exists()
        {
            attach(
                &mut out,
                &sig,
                "the plan's approval (SSHSIG, namespace decom-custodian)",
                "text/plain",
            )?;
            attach(
                &mut out,
                &sign::tsr_path(&sig),
                "RFC 3161 timestamp over the approval",
                "application/timestamp-reply",
            )?;
        }
        out.push(Attachment {
            name: SIGNERS_ATTACHMENT.into(),
            description: "the trusted signers file the signatures were checked against".into(),
            mime: "text/plain",
            bytes: self.signers_bytes.clone(),
        });
        Ok(out)
    }

    /// The `ssh-keygen -Y verify` commands that check both signatures
    /// without decom (none when the certificate does not parse: the
    /// principal and time they need are inside it).
    pub fn ssh_keygen_commands(&self, naming: Naming) -> Vec<String> {
        let Some(cert) = &self.certificate else {
            return Vec::new();
        };
        let (cert_path, signers) = match naming {
            Naming::AsGiven => (
                self.files.certificate().to_path_buf(),
                self.signers_path.clone(),
            ),
            Naming::Attached => (
                PathBuf::from(file_name(self.files.certificate())),
                PathBuf::from(SIGNERS_ATTACHMENT),
            ),
        };
        ssh_keygen_commands(&cert_path, &signers, cert, self.cosigner.as_deref())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The principal whose valid co-signature sits beside the certificate.
fn cosigner(
    cert_path: &Path,
    cert: &Certificate,
    bytes: &[u8],
    signers: &AllowedSigners,
) -> Option<String> {
    let sig = sign::read_sig(cert_path, Role::Custodian).ok()?;
    let at = sign::unix(&cert.issued).ok()?;
    sign::verify_bytes(bytes, &sig, signers, Role::Custodian, None, at)
        .ok()
        .map(|p| p.principal)
}

/// Shell-quote a word for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn ssh_keygen_commands(
    cert_path: &Path,
    signers: &Path,
    cert: &Certificate,
    cosigner: Option<&str>,
) -> Vec<String> {
    let sh = shell_quote;
    let when = sign::ssh_time(&cert.issued);
    let file = cert_path.display().to_string();
    let signers = sh(&signers.display().to_string());
    let mut out = vec![format!(
        "ssh-keygen -Y verify -f {signers} -I {} -n {} -s {} -Overify-time={when} < {}",
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
            "\"$(ssh-keygen -Y find-principals -f {signers} -n {} -s {custodian_sig} -Overify-time={when})\"",
            sign::CUSTODIAN
        ),
    };
    out.push(format!(
        "ssh-keygen -Y verify -f {signers} -I {principal} -n {} -s {custodian_sig} -Overify-time={when} < {}",
        sign::CUSTODIAN,
        sh(&file)
    ));
    out
}

/// Each record retained by policy, looked at today: until its end date it
/// must be there with the approved bytes; after it, it is not looked at.
fn retained_now(records: &[super::RetainedRecord]) -> std::result::Result<String, String> {
    let today = time::OffsetDateTime::now_utc().date();
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for r in records {
        let until = crate::manifest::retain::until_date(&r.record.until);
        match until {
            Ok(d) if d < today => seen.push(format!(
                "{}: retention ended on {}, not looked at",
                r.record.path, r.record.until
            )),
            _ => match r.record.check() {
                Ok(f) => seen.push(format!("{f}, kept until {}", r.record.until)),
                Err(f) => wrong.push(format!("{f} (kept by policy until {})", r.record.until)),
            },
        }
    }
    if wrong.is_empty() {
        Ok(seen.join("; "))
    } else {
        Err(wrong.join("; "))
    }
}

/// Add the file at `p` to `out` when it exists.
fn attach(out: &mut Vec<Attachment>, p: &Path, what: &str, mime: &'static str) -> Result<()> {
    match std::fs::read(p) {
        Ok(bytes) => out.push(Attachment {
            name: file_name(p),
            description: what.into(),
            mime,
            bytes,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(p, e)),
    }
    Ok(())
}
