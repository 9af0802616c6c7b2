//! The disposal certificate: the signed machine record of what happened,
//! built only from the plan and the journal (never from memory), so it can
//! claim no more than the journal proves. An artifact is "disposed" in the
//! certificate only when the journal holds its verified read-back (for every
//! verified pass) and its absence proof.
//!
//! The JSON is deterministic (fixed field order, no floats, RFC 3339 UTC
//! times) and signed as written; it is never re-serialized before verifying.

use crate::error::{Error, Result};
use crate::journal::{self, Outcome};
use crate::manifest::{Component, Model, Person};
use crate::plan::{ArtifactKind, Category, Item, Plan, Risk, Sanitization, Tool};
use crate::profile::Profile;
use crate::sign::Signer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const CERT_SCHEMA: &str = "decom.certificate/1";
const MAX_CERT: u64 = 4 << 30;

/// A certificate. `A` is how its artifacts are held: in memory (the
/// default: verify, render, collect), or in a [`CertSpool`] on disk as
/// execute writes them (a million versions are never held together).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate<A = Vec<CertArtifact>> {
    pub schema: String,
    pub id: String,
    pub status: Status,
    pub tool: Tool,
    pub host: String,
    /// When the certificate was issued and signed by the operator; signature
    /// validity windows are checked at this time.
    pub issued: String,
    pub started: String,
    pub finished: String,
    pub model: Model,
    pub components: Vec<Component>,
    pub plan: PlanRef,
    pub operator: Party,
    pub custodian: Party,
    pub nist_sp_800_88: Nist,
    /// Each sanitization method and technique used, in NIST SP 800-88
    /// Rev. 2 and IEEE 2883 terms, with its artifacts (absent in
    /// certificates from before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sanitization: Vec<standards::Sanitized>,
    pub standards: Vec<Reference>,
    /// Records kept by policy (`[[retain]]`): never disposed of, never a
    /// residual risk (absent in certificates without any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedRecord>,
    pub residual_risks: Vec<Risk>,
    /// One host's run of a fleet plan (`execute --host`): which part of
    /// the plan this certificate covers. Absent for a whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartOf>,
    /// A fleet certificate (`decom collect`): every host's part, checked
    /// and referenced by SHA-256, and whether they cover the whole plan.
    /// Its own artifact list is empty: the parts hold the artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<fleet::Fleet>,
    pub totals: Totals,
    pub locations: Vec<LocationSummary>,
    pub artifacts: A,
}

/// A certificate's artifacts, as execute writes them: one JSON record each
/// in an unnamed temporary file, read back (positionally) when the
/// certificate is serialized.
#[derive(Debug)]
pub struct CertSpool {
    file: std::fs::File,
    len: u64,
    /// How many spooled artifacts are not disposed.
    undisposed: u64,
}

impl CertSpool {
    fn new() -> std::io::Result<(Self, std::io::BufWriter<std::fs::File>)> {
        let file = tempfile::tempfile()?;
        let w = std::io::BufWriter::with_capacity(1 << 16, file.try_clone()?);
        Ok((
            CertSpool {
                file,
                len: 0,
                undisposed: 0,
            },
            w,
        ))
    }

    /// Spool one artifact: pretty-printed at the depth the certificate
    /// puts it (the array's items are indented four spaces), so that
    /// serializing the certificate copies it as it is. Records end with a
    /// NUL, which JSON text never holds.
    fn push(&mut self, w: &mut impl std::io::Write, a: &CertArtifact) -> std::io::Result<()> {
        let pretty = serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?;
        let mut record = Vec::with_capacity(pretty.len() + pretty.len() / 8 + 1);
        for (i, line) in pretty.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                record.extend_from_slice(b"\n    ");
            }
            record.extend_from_slice(line);
        }
        record.push(0);
        w.write_all(&record)?;
        self.len += record.len() as u64;
        self.undisposed += u64::from(a.outcome != Outcome::Disposed);
        Ok(())
    }

    /// Each record's bytes (without its NUL), in order.
    fn records(&self) -> impl Iterator<Item = std::io::Result<Vec<u8>>> + '_ {
        use std::io::BufRead;
        let mut r = std::io::BufReader::with_capacity(
            1 << 16,
            crate::plan::spool::At::new(&self.file, 0, self.len),
        );
        std::iter::from_fn(move || {
            let mut record = Vec::new();
            match r.read_until(0, &mut record) {
                Ok(0) => None,
                Ok(_) => {
                    record.pop();
                    Some(Ok(record))
                }
                Err(e) => Some(Err(e)),
            }
        })
    }

    fn iter(&self) -> impl Iterator<Item = std::io::Result<CertArtifact>> + '_ {
        self.records()
            .map(|r| serde_json::from_slice(&r?).map_err(std::io::Error::other))
    }
}

impl Serialize for CertSpool {
    /// The spooled records as they are (checked to be JSON, not parsed into
    /// artifacts and printed again): the same bytes the in-memory
    /// certificate would serialize to, at a fraction of the work.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        for r in self.records() {
            let r = String::from_utf8(r.map_err(S::Error::custom)?).map_err(S::Error::custom)?;
            let raw = serde_json::value::RawValue::from_string(r).map_err(S::Error::custom)?;
            seq.serialize_element(&raw)?;
        }
        seq.end()
    }
}

/// What can be said of a certificate's artifacts one at a time, however
/// they are held.
pub trait Artifacts {
    /// Each artifact, in order.
    fn each(&self, f: &mut dyn FnMut(&CertArtifact)) -> Result<()>;

    /// Each artifact not disposed, in order.
    fn each_undisposed(&self, f: &mut dyn FnMut(&CertArtifact)) -> Result<()> {
        self.each(&mut |a| {
            if a.outcome != Outcome::Disposed {
                f(a)
            }
        })
    }
}

impl Artifacts for Vec<CertArtifact> {
    fn each(&self, f: &mut dyn FnMut(&CertArtifact)) -> Result<()> {
        self.iter().for_each(f);
        Ok(())
    }
}

impl Artifacts for CertSpool {
    fn each(&self, f: &mut dyn FnMut(&CertArtifact)) -> Result<()> {
        for a in self.iter() {
            f(&a.map_err(|e| Error::input(format!("the certificate's spooled artifacts: {e}")))?);
        }
        Ok(())
    }

    /// Read back only when the spool holds one: a complete purge of a
    /// million versions is not parsed again to print nothing.
    fn each_undisposed(&self, f: &mut dyn FnMut(&CertArtifact)) -> Result<()> {
        if self.undisposed == 0 {
            return Ok(());
        }
        self.each(&mut |a| {
            if a.outcome != Outcome::Disposed {
                f(a)
            }
        })
    }
}

/// The part of a fleet plan one run covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartOf {
    pub host: String,
    /// Whether this run also did the plan's S3 locations.
    pub s3: bool,
    /// The indices of the plan locations it covered.
    pub locations: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every planned artifact was disposed and verified.
    Complete,
    /// At least one artifact was not disposed, or not verified.
    Incomplete,
    /// The plan listed no artifact: nothing was disposed because nothing
    /// was found. Never written as "complete".
    #[serde(rename = "nothing-found")]
    NothingFound,
    /// Nothing failed, but S3 Lifecycle has not finished with a delegated
    /// folder yet: a later `execute --resume` completes (or not) the
    /// certificate.
    Pending,
}

/// The status as the JSON writes it.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Complete => "complete",
        Status::Incomplete => "incomplete",
        Status::NothingFound => "nothing-found",
        Status::Pending => "pending",
    }
}

/// A signer: principal from the trusted signers file and key fingerprint,
/// plus what the manifest or flags say about the person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub principal: String,
    pub key_fingerprint: String,
    #[serde(default, skip_serializing_if = "is_empty_person")]
    pub details: Person,
}

impl Party {
    pub fn new(signer: &Signer, details: Person) -> Party {
        Party {
            principal: signer.principal.clone(),
            key_fingerprint: signer.key_fingerprint.clone(),
            details,
        }
    }

    /// The custodians who approved the plan, as one party (principals and
    /// keys joined with ", "), with the manifest's details of the custodian.
    pub fn custodians(approvals: &[Signer], details: Option<&Person>) -> Party {
        let join = |f: fn(&Signer) -> &str| approvals.iter().map(f).collect::<Vec<_>>().join(", ");
        Party {
            principal: join(|s| &s.principal),
            key_fingerprint: join(|s| &s.key_fingerprint),
            details: details.cloned().unwrap_or_default(),
        }
    }

    /// The principal and key, without the person's details.
    pub fn signer(&self) -> Signer {
        Signer {
            principal: self.principal.clone(),
            key_fingerprint: self.key_fingerprint.clone(),
        }
    }
}

fn is_empty_person(p: &Person) -> bool {
    *p == Person::default()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRef {
    pub file: String,
    pub sha256: String,
    pub created: String,
    pub manifest_sha256: String,
    pub profile: Profile,
    /// Custodian approvals of the exact plan bytes (namespace decom-custodian).
    pub approvals: Vec<Party>,
}

/// A record the approved plan retains by policy, as the run found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainedRecord {
    pub record: crate::manifest::retain::Retained,
    /// Whether it was there with the approved bytes when the certificate
    /// was made (`None`: not looked at by this run, a fleet's).
    pub unchanged: Option<bool>,
    /// What the run found, in words.
    pub found: String,
}

impl RetainedRecord {
    /// Look at the file now.
    pub fn checked(record: &crate::manifest::retain::Retained) -> RetainedRecord {
        let (unchanged, found) = match record.check() {
            Ok(f) => (Some(true), f),
            Err(f) => (Some(false), f),
        };
        RetainedRecord {
            record: record.clone(),
            unchanged,
            found,
        }
    }

    /// Not looked at by this run, and why.
    pub fn unchecked(record: &crate::manifest::retain::Retained, why: &str) -> RetainedRecord {
        RetainedRecord {
            record: record.clone(),
            unchanged: None,
            found: why.to_string(),
        }
    }
}

/// NIST SP 800-88 Rev. 1 Appendix G fields that apply to file and object disposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nist {
    pub performer: String,
    pub media: String,
    pub method_type: String,
    pub method_used: String,
    pub tool: String,
    pub verification_method: String,
    pub validator: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub standard: String,
    pub provision: String,
    pub evidence: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub artifacts: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub artifacts: u64,
    pub bytes: u64,
    pub by_outcome: BTreeMap<String, Count>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSummary {
    pub index: u32,
    pub uri: String,
    /// Filesystem and medium, or bucket and versioning.
    pub medium: String,
    pub totals: Totals,
    /// S3: how the absence of the purged versions was proven (all runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absence_proof: Option<ProofSummary>,
}

/// The absence proof of an S3 location, as the journal records it, summed
/// over the runs (a resumed run proves what was left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSummary {
    /// In words, with the numbers.
    pub method: String,
    pub mode: crate::store::s3::VerifyMode,
    /// Versions and delete markers whose absence was to be proven.
    pub versions: u64,
    /// Pages of complete listings of the location.
    pub listing_pages: u64,
    /// Versions HEADed by version id.
    pub heads: u64,
    /// Sampled HEADs that did not answer 404 for a version the listing
    /// called gone: it still exists, or the HEAD got no answer after its
    /// retries and a second ask.
    /// Either way the listing is not trusted.
    pub contradicted: u64,
    /// Aborted uploads checked with ListParts.
    pub uploads: u64,
}

impl ProofSummary {
    fn of(location: u32, proofs: &[journal::AbsenceProof], gcs: bool) -> Option<ProofSummary> {
        let mut sum: Option<ProofSummary> = None;
        let mut soft = Vec::new();
        for p in proofs {
            if p.location != location {
                continue;
            }
            let s = sum.get_or_insert(ProofSummary {
                method: String::new(),
                mode: p.mode,
                versions: 0,
                listing_pages: 0,
                heads: 0,
                contradicted: 0,
                uploads: 0,
            });
            s.mode = p.mode;
            soft.extend(p.soft_delete.clone());
            s.versions += p.versions;
            s.listing_pages += p.listing_pages;
            s.heads += p.heads;
            s.contradicted += p.contradicted;
            s.uploads += p.uploads;
        }
        sum.map(|mut s| {
            if gcs {
                s.method = gcs_proof(&s, &soft);
                return s;
            }
            let heads = match (s.heads, s.mode) {
                // A folder S3 Lifecycle emptied: the listing is the proof.
                (0, _) => "no HEAD: no object version was left to sample".to_string(),
                (n, crate::store::s3::VerifyMode::Each) => {
                    format!("HEAD by version id on every one of them ({n})")
                }
                (n, crate::store::s3::VerifyMode::Sample) => {
                    format!("HEAD by version id on a random sample of {n}")
                }
            };
            s.method = format!(
                "complete listing of the location ({} page(s)) shows none of the {} purged version(s) and delete marker(s); {heads}{}; {} aborted upload(s) absent",
                s.listing_pages,
                s.versions,
                match (s.heads, s.contradicted) {
                    (0, _) => String::new(),
                    (_, 0) => ": all 404".to_string(),
                    (_, c) => format!(": {c} found a version the listing called gone"),
                },
                s.uploads
            );
            s
        })
    }
}

/// A GCS location's proof in words: the generation listing, the GETs by
/// generation, and what the soft-deleted listing showed (or that it is
/// unknown).
fn gcs_proof(s: &ProofSummary, soft: &[String]) -> String {
    let gets = match (s.heads, s.mode, s.contradicted) {
        (0, _, _) => "no GET: no generation was left to sample".to_string(),
        (n, m, c) => format!(
            "GET by generation on {} ({n}): {}",
            match m {
                crate::store::s3::VerifyMode::Each => "every one of them",
                crate::store::s3::VerifyMode::Sample => "a random sample",
            },
            match c {
                0 => "all 404".to_string(),
                c => format!("{c} found a generation the listing called gone"),
            }
        ),
    };
    format!(
        "complete listing of every generation of the location ({} page(s)) shows none of the {} purged generation(s); {gets}{}",
        s.listing_pages,
        s.versions,
        match soft.last() {
            Some(t) => format!("; soft delete: {t}"),
            None => String::new(),
        }
    )
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertArtifact {
    pub id: u32,
    pub location: u32,
    pub kind: ArtifactKind,
    pub path: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub method: String,
    pub sanitization: Sanitization,
    pub passes: Vec<PassEvidence>,
    pub verification: Verification,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassEvidence {
    pub pass: u32,
    pub pattern: String,
    /// What made the bytes: `aes-256-ctr` or `fill` (absent in
    /// certificates from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback_sha256: Option<String>,
    /// How the read-back reached the device: "direct" (O_DIRECT) or
    /// "cache-dropped" (the filesystem refused O_DIRECT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback_via: Option<crate::journal::ReadVia>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// "read-back and absence" or "absence".
    pub method: String,
    pub verified: bool,
}

pub struct Inputs<'a> {
    /// The plan, holding every artifact but its S3 versions and markers.
    pub plan: &'a Plan,
    /// The plan's S3 versions and delete markers.
    pub spool: &'a crate::plan::spool::Spool,
    pub plan_sha256: &'a str,
    pub plan_file: &'a str,
    pub approvals: Vec<Party>,
    pub operator: Party,
    /// The journal, replayed.
    pub journal: &'a journal::Replay<'a>,
    pub started: String,
    /// The part of a fleet plan the run did (`plan` is already cut to it).
    pub part: Option<&'a crate::plan::Part>,
}

/// Build the certificate from the plan and the journal.
pub fn build(inp: Inputs<'_>) -> crate::error::Result<Certificate<CertSpool>> {
    let plan = inp.plan;
    let journal = inp.journal;
    let now = crate::util::now_rfc3339();
    let erased = erased_keys(plan, journal);
    let spool_err = |e: std::io::Error| Error::input(format!("cannot spool the certificate: {e}"));
    let (mut artifacts, mut spooled) = CertSpool::new().map_err(spool_err)?;
    let mut totals = Totals::default();
    let mut per_location: std::collections::HashMap<u32, Totals> = Default::default();
    let mut tally = Tally::default();
    let mut methods = standards::Methods::default();
    for a in crate::plan::spool::in_id_order(&plan.artifacts, inp.spool.all()) {
        let ca = artifact(plan, journal, &erased, a?.as_ref());
        totals.add(&ca);
        per_location.entry(ca.location).or_default().add(&ca);
        tally.add(&ca);
        methods.add(&ca);
        artifacts.push(&mut spooled, &ca).map_err(spool_err)?;
    }
    std::io::Write::flush(&mut spooled).map_err(spool_err)?;
    drop(spooled);
    let locations = plan
        .locations
        .iter()
        .map(|l| LocationSummary {
            index: l.index,
            uri: l.uri.clone(),
            medium: l.medium(),
            totals: per_location.remove(&l.index).unwrap_or_default(),
            absence_proof: l
                .store
                .kind()
                .remote()
                .then(|| ProofSummary::of(l.index, &journal.proofs, l.gcs().is_some()))
                .flatten(),
        })
        .collect();
    let status = tally.status();
    let approvers: Vec<crate::sign::Signer> = inp.approvals.iter().map(Party::signer).collect();
    let custodian = Party::custodians(&approvers, plan.manifest.custodian.as_ref());
    let mut operator = inp.operator;
    if is_empty_person(&operator.details) {
        operator.details = plan.manifest.operator.clone().unwrap_or_default();
    }
    let nist = nist_fields(plan, &tally, &operator, &custodian);
    Ok(Certificate {
        schema: CERT_SCHEMA.into(),
        id: format!("decom-{}", crate::util::random_hex(16)),
        status,
        tool: Tool::this(),
        host: crate::util::hostname(),
        issued: now.clone(),
        started: inp.started,
        finished: now,
        model: plan.model.clone(),
        components: plan.components.clone(),
        plan: PlanRef {
            file: inp.plan_file.to_string(),
            sha256: inp.plan_sha256.to_string(),
            created: plan.created.clone(),
            manifest_sha256: plan.manifest_sha256.clone(),
            profile: plan.profile.clone(),
            approvals: inp.approvals,
        },
        operator,
        custodian,
        nist_sp_800_88: nist,
        sanitization: methods.rows(),
        standards: standards::references(),
        retained: plan
            .retained
            .iter()
            .map(|r| match inp.part {
                None => RetainedRecord::checked(r),
                Some(_) => RetainedRecord::unchecked(
                    r,
                    "not looked at by a host's part; verify --recheck on its host looks",
                ),
            })
            .collect(),
        residual_risks: plan.residual_risks.clone(),
        part: inp.part.map(|p| PartOf {
            host: p.host.clone(),
            s3: p.s3,
            locations: plan.locations.iter().map(|l| l.index).collect(),
        }),
        fleet: None,
        totals,
        locations,
        artifacts,
    })
}

/// KMS keys KMS has deleted (their artifact disposed), by every name the
/// planned versions give them: those versions are crypto-erased.
fn erased_keys<'p>(
    plan: &'p Plan,
    journal: &journal::Replay<'_>,
) -> std::collections::HashMap<&'p str, &'p str> {
    let mut erased = std::collections::HashMap::new();
    for a in &plan.artifacts {
        if let Item::KmsKey(k) = &a.item
            && journal
                .outcome(a.id)
                .is_some_and(|o| o.0 == Outcome::Disposed)
            && let Some(loc) = plan.location(a.location).s3()
        {
            for f in loc.kms_keys.iter().filter(|f| f.key_arn == k.key_arn) {
                erased.insert(f.key_arn.as_str(), f.key_arn.as_str());
                for n in &f.named_as {
                    erased.insert(n.as_str(), f.key_arn.as_str());
                }
            }
        }
    }
    erased
}

/// One artifact's entry in the certificate: what the plan says of it, what
/// the journal says happened, and whether the evidence verifies it.
fn artifact(
    plan: &Plan,
    journal: &journal::Replay<'_>,
    erased: &std::collections::HashMap<&str, &str>,
    a: &crate::plan::Artifact,
) -> CertArtifact {
    let st = journal.state_of(a.id);
    let (mut outcome, mut reason, finished) = match st.outcome.clone() {
        Some((o, r, t)) => (o, r, Some(t)),
        None => (
            Outcome::Failed,
            Some("not attempted (run did not finish)".to_string()),
            None,
        ),
    };
    let (size, sha256, component, sanitization, method) = described(plan, erased, a, outcome);
    let (passes, verified) = pass_evidence(&plan.profile, a, &st, outcome);
    if outcome == Outcome::Disposed && !verified {
        outcome = Outcome::Failed;
        reason = Some("the journal lacks its verification evidence".into());
    }
    CertArtifact {
        id: a.id,
        location: a.location,
        kind: a.item.kind(),
        path: a.item.path().to_string(),
        size,
        sha256,
        component,
        method,
        sanitization,
        verification: Verification {
            method: verification_method(plan, a, &passes).into(),
            verified,
        },
        passes,
        outcome,
        reason,
        started: st.started.clone(),
        finished,
    }
}

/// What an artifact is for the certificate: its size, content hash and
/// component, its sanitization category, and the method used.
fn described(
    plan: &Plan,
    erased: &std::collections::HashMap<&str, &str>,
    a: &crate::plan::Artifact,
    outcome: Outcome,
) -> (u64, Option<String>, Option<String>, Sanitization, String) {
    let profile = &plan.profile;
    match &a.item {
        Item::File(f) => (
            f.size,
            Some(f.sha256.clone()),
            f.matched.component.clone(),
            f.sanitization.clone(),
            profile.method_summary(),
        ),
        Item::Symlink(_) => (
            0,
            None,
            None,
            metadata_only(),
            "unlink (link not followed)".to_string(),
        ),
        Item::Dir(_) => (0, None, None, metadata_only(), "rmdir".to_string()),
        Item::S3Version(v) => match v.kms_key_id.as_deref().and_then(|k| erased.get(k)) {
            Some(arn) => (
                v.size,
                v.sha256.clone(),
                v.matched.component.clone(),
                Sanitization {
                    category: Category::CryptoErase,
                    reason: format!(
                        "cryptographic erase: KMS deleted {arn}, the key that encrypts this version; replicas and backups encrypted under it are unreadable too"
                    ),
                },
                "DeleteObjects by version id, then cryptographic erase of its KMS key".to_string(),
            ),
            None => (
                v.size,
                v.sha256.clone(),
                v.matched.component.clone(),
                object_store(),
                "DeleteObjects by version id".to_string(),
            ),
        },
        Item::LuksKeyslots(l) => (
            l.size,
            None,
            None,
            luks_sanitization(l, outcome),
            format!(
                "cryptsetup luksErase (all keyslots: {})",
                l.keyslots.join(", ")
            ),
        ),
        Item::KmsKey(k) => (
            0,
            None,
            None,
            kms_sanitization(plan, a, k, outcome),
            format!(
                "ScheduleKeyDeletion with a {}-day waiting period; then DescribeKey until KMS reports the key gone",
                k.window_days
            ),
        ),
        Item::S3DeleteMarker(_) => (
            0,
            None,
            None,
            object_store(),
            "DeleteObjects by version id".to_string(),
        ),
        Item::S3Upload(u) => (
            u.bytes,
            None,
            None,
            object_store(),
            "AbortMultipartUpload".to_string(),
        ),
        Item::GcsGeneration(_)
        | Item::GcsLifecycle(_)
        | Item::MlflowVersion(_)
        | Item::MlflowAlias(_)
        | Item::MlflowRun(_)
        | Item::MlflowModel(_) => gcs_and_registry(&a.item),
        Item::S3Lifecycle(l) => (
            l.bytes,
            None,
            None,
            object_store(),
            format!(
                "S3 Lifecycle ({} version(s), {} delete marker(s), {} upload(s) at trace): {}",
                l.versions,
                l.delete_markers,
                l.uploads,
                l.rules
                    .iter()
                    .map(|r| r.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

/// [`described`] for GCS generations and folders and registry entries.
fn gcs_and_registry(item: &Item) -> (u64, Option<String>, Option<String>, Sanitization, String) {
    match item {
    Item::GcsGeneration(g) => (
        g.size,
        g.sha256.clone(),
        g.matched.component.clone(),
        object_store(),
        format!(
            "objects.delete by generation, if its metageneration is still {}{}",
            g.metageneration,
            if g.live {
                " and it is still the live generation"
            } else {
                ""
            }
        ),
    ),
    Item::GcsLifecycle(l) => (
        l.bytes,
        None,
        None,
        object_store(),
        format!(
            "GCS lifecycle rules ({} generation(s) at trace): {}",
            l.generations,
            l.rules.join("; ")
        ),
    ),
    Item::MlflowVersion(v) => (
        0,
        None,
        None,
        registry_entry(),
        format!(
            "MLflow DeleteModelVersion, if its source is still {}",
            v.source
        ),
    ),
    Item::MlflowAlias(x) => (
        0,
        None,
        None,
        registry_entry(),
        format!("MLflow DeleteRegisteredModelAlias, if it still points at version {}", x.version),
    ),
    Item::MlflowRun(_) => (
        0,
        None,
        None,
        registry_entry(),
        "MLflow DeleteRun, after its artifacts; then mlflow gc where the backend store is known".to_string(),
    ),
    Item::MlflowModel(_) => (
        0,
        None,
        None,
        registry_entry(),
        "MLflow DeleteRegisteredModel, once it has no version".to_string(),
    ),
        _ => unreachable!("only GCS and registry items come here"),
    }
}

/// A LUKS volume's sanitization: crypto-erase once its keyslots are gone.
fn luks_sanitization(l: &crate::plan::LuksKeyslots, outcome: Outcome) -> Sanitization {
    if outcome == Outcome::Disposed {
        Sanitization {
            category: Category::CryptoErase,
            reason: format!(
                "cryptographic erase: every keyslot of LUKS2 volume {} on {} destroyed (cryptsetup luksErase); the volume key is gone from the device, so its {} byte(s) cannot be decrypted",
                l.uuid, l.device, l.size
            ),
        }
    } else {
        Sanitization {
            category: Category::Logical,
            reason: "not erased: the volume's keyslots remain".into(),
        }
    }
}

/// A KMS key's sanitization: crypto-erase of every copy under it once KMS
/// reports it deleted.
fn kms_sanitization(
    plan: &Plan,
    a: &crate::plan::Artifact,
    k: &crate::plan::KmsKey,
    outcome: Outcome,
) -> Sanitization {
    if outcome == Outcome::Disposed {
        let replicas = plan
            .location(a.location)
            .s3()
            .map(|l| l.facts.replication_rules.clone())
            .unwrap_or_default();
        Sanitization {
            category: Category::CryptoErase,
            reason: format!(
                "cryptographic erase: KMS reports the key deleted; every copy encrypted under it is unreadable: the {} purged version(s), their backups{}",
                k.versions,
                if replicas.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and replicas made under this key by replication rule(s) {}",
                        replicas.join(", ")
                    )
                }
            ),
        }
    } else {
        Sanitization {
            category: Category::Logical,
            reason: "not yet erased: the key still exists (pending deletion)".into(),
        }
    }
}

/// A file's passes as the journal recorded them, and whether the evidence
/// verifies a disposed artifact (each pass written, each verified pass
/// read back in agreement, absence checked).
fn pass_evidence(
    profile: &crate::profile::Profile,
    a: &crate::plan::Artifact,
    st: &journal::ArtifactState,
    outcome: Outcome,
) -> (Vec<PassEvidence>, bool) {
    let mut passes = Vec::new();
    let mut verified = outcome == Outcome::Disposed && st.removed_or_gone();
    if let Item::File(_) = &a.item {
        for (i, p) in profile.passes.iter().enumerate() {
            let n = i as u32 + 1;
            let w = st.written(n);
            let rb = st.readback(n);
            // Verified: the read-back agreed (byte for byte with the
            // regenerated stream, or by hash in older journals), and
            // agrees with any hash the writer journaled.
            let agrees = |r: &journal::ReadBackDone| {
                r.ok && r.written_sha256 == r.readback_sha256
                    && w.and_then(|w| w.written_sha256.as_ref())
                        .is_none_or(|h| *h == r.written_sha256)
            };
            if profile.verifies(i) && !rb.is_some_and(agrees) {
                verified = false;
            }
            if w.is_none() {
                verified = false;
            }
            passes.push(PassEvidence {
                pass: n,
                pattern: p.to_string(),
                generator: w.and_then(|w| w.generator.clone()),
                written_sha256: w
                    .and_then(|w| w.written_sha256.clone())
                    .or_else(|| rb.map(|r| r.written_sha256.clone())),
                readback_sha256: rb.map(|r| r.readback_sha256.clone()),
                readback_via: rb.and_then(|r| r.via),
            });
        }
    }
    (passes, verified)
}

/// How an artifact's disposal was verified, in words.
fn verification_method(
    plan: &Plan,
    a: &crate::plan::Artifact,
    passes: &[PassEvidence],
) -> &'static str {
    let profile = &plan.profile;
    // The absence proof the custodian approved (the plan's `[s3] verify`).
    let proof_mode = plan
        .manifest
        .s3
        .as_ref()
        .and_then(|s| s.proof().ok())
        .map(|p| p.0)
        .unwrap_or_default();
    let via_cache = passes
        .iter()
        .any(|p| p.readback_via == Some(crate::journal::ReadVia::CacheDropped));
    match &a.item {
        Item::File(_) if profile.verify != crate::profile::Verify::None && via_cache => {
            "read-back through the page cache after dropping it (no O_DIRECT on this filesystem) and absence proof"
        }
        Item::File(_) if profile.verify != crate::profile::Verify::None => {
            "read-back from device and absence proof"
        }
        Item::S3Version(_) if proof_mode == crate::store::s3::VerifyMode::Each => {
            "absence proof: not in a complete listing of the location, and HEAD by its version id answers 404"
        }
        Item::S3Version(_) => {
            "absence proof: not in a complete listing of the location; HEAD by version id on a random sample of the location's purged versions answers 404"
        }
        Item::S3DeleteMarker(_) => "absence proof: not in a complete listing of the location",
        Item::S3Upload(_) => {
            "absence proof: not in a complete listing of the location's uploads, and ListParts answers NoSuchUpload"
        }
        Item::S3Lifecycle(_) => {
            "absence proof: a complete listing of the folder shows no version, delete marker or upload left; decom's rules removed"
        }
        Item::KmsKey(_) => "KMS DescribeKey answers NotFoundException: the key no longer exists",
        _ => "absence proof",
    }
}

impl journal::ArtifactState {
    fn removed_or_gone(&self) -> bool {
        // A disposed outcome is only journaled after the absence check.
        self.outcome
            .as_ref()
            .is_some_and(|(o, _, _)| *o == Outcome::Disposed)
    }
}

fn object_store() -> Sanitization {
    Sanitization {
        category: Category::Logical,
        reason: "object store: every version deleted and proven absent through the S3 API; the provider reclaims the bytes".into(),
    }
}

/// A model registry entry: metadata that points at the bytes, which are
/// artifacts of their own.
fn registry_entry() -> Sanitization {
    Sanitization {
        category: Category::Logical,
        reason: "a registry entry: metadata that points at the model's bytes, which are disposed of as artifacts of their own".into(),
    }
}

fn metadata_only() -> Sanitization {
    Sanitization {
        category: Category::Logical,
        reason: "name only: a link or directory holds no model data".into(),
    }
}

fn totals_of<'a>(arts: impl Iterator<Item = &'a CertArtifact>) -> Totals {
    let mut t = Totals::default();
    for a in arts {
        t.add(a);
    }
    t
}

impl Totals {
    fn add(&mut self, a: &CertArtifact) {
        self.artifacts += 1;
        self.bytes += a.size;
        let c = self
            .by_outcome
            .entry(outcome_key(a.outcome).into())
            .or_default();
        c.artifacts += 1;
        c.bytes += a.size;
    }
}

/// What the status and the NIST method type are decided from, counted an
/// artifact at a time.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    artifacts: u64,
    pending: u64,
    /// Disposed and verified.
    done: u64,
    /// Artifacts holding data, and of those by category.
    data: u64,
    crypto: u64,
    clear: u64,
}

impl Tally {
    fn add(&mut self, a: &CertArtifact) {
        self.artifacts += 1;
        self.pending += u64::from(a.outcome == Outcome::Pending);
        self.done += u64::from(a.outcome == Outcome::Disposed && a.verification.verified);
        if a.kind.holds_data() {
            self.data += 1;
            self.crypto += u64::from(a.sanitization.category == Category::CryptoErase);
            self.clear += u64::from(a.sanitization.category == Category::Clear);
        }
    }

    fn status(&self) -> Status {
        if self.artifacts == 0 {
            Status::NothingFound
        } else if self.pending > 0 && self.pending + self.done == self.artifacts {
            Status::Pending
        } else if self.done == self.artifacts {
            Status::Complete
        } else {
            Status::Incomplete
        }
    }
}

fn outcome_key(o: Outcome) -> &'static str {
    match o {
        Outcome::Disposed => "disposed",
        Outcome::Failed => "failed",
        Outcome::SkippedChanged => "skipped-changed",
        Outcome::Retained => "retained",
        Outcome::Pending => "pending",
    }
}

fn status_of(arts: &[CertArtifact]) -> Status {
    let mut t = Tally::default();
    arts.iter().for_each(|a| t.add(a));
    t.status()
}

fn nist_fields<A>(plan: &Plan<A>, t: &Tally, op: &Party, cust: &Party) -> Nist {
    let method_type = if t.data == 0 {
        "none (no file data)".to_string()
    } else if t.crypto == t.data {
        "Purge (cryptographic erase)".to_string()
    } else if t.crypto > 0 {
        format!(
            "Purge (cryptographic erase) for {} of {} artifact(s) holding data; the others clear or logical sanitization (see each artifact)",
            t.crypto, t.data
        )
    } else if t.clear == t.data {
        "Clear".to_string()
    } else if t.clear > 0 {
        "Clear for some artifacts, logical sanitization for the others (see each artifact)"
            .to_string()
    } else {
        "Logical sanitization (file-level; not NIST Clear or Purge)".to_string()
    };
    let name = |p: &Party| match &p.details.name {
        Some(n) => format!("{n} ({})", p.principal),
        None => p.principal.clone(),
    };
    let media: Vec<String> = plan
        .locations
        .iter()
        .map(|l| format!("{} ({})", l.uri, l.medium()))
        .collect();
    Nist {
        performer: name(op),
        media: media.join("; "),
        method_type,
        method_used: plan.profile.method_summary(),
        tool: format!("{} {}", crate::TOOL_NAME, crate::TOOL_VERSION),
        verification_method: if plan.profile.verify == crate::profile::Verify::None {
            "full absence proof of every name".into()
        } else {
            "full read-back of the verified pass(es) from the device, hash compared; absence proof"
                .into()
        },
        validator: name(cust),
    }
}

impl<A: Serialize> Certificate<A> {
    /// [`Certificate::to_bytes`], written to `w` as it is serialized.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::util::write_json(w, self)
    }
}

impl Certificate {
    pub fn load(path: &Path) -> Result<(Certificate, Vec<u8>)> {
        let bytes = crate::util::read_input(path, "certificate", MAX_CERT)?;
        let c = Self::parse(&bytes, &path.display().to_string())?;
        Ok((c, bytes))
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Certificate> {
        let c: Certificate = serde_json::from_slice(bytes).map_err(|e| {
            Error::input(format!(
                "certificate {origin}: not a valid decom certificate: {e}"
            ))
        })?;
        if c.schema != CERT_SCHEMA {
            return Err(Error::input(format!(
                "certificate {origin}: schema {:?} is not {CERT_SCHEMA:?}",
                c.schema
            )));
        }
        Ok(c)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        crate::util::to_json_bytes(self)
    }

    /// Internal consistency: totals add up, status follows the outcomes, no
    /// artifact is disposed without verification. Returns the problems found.
    pub fn check(&self) -> Vec<String> {
        if let Some(f) = &self.fleet {
            return fleet::check(self, f);
        }
        let mut problems = Vec::new();
        if totals_of(self.artifacts.iter()) != self.totals {
            problems.push("totals do not add up".to_string());
        }
        for l in &self.locations {
            if totals_of(self.artifacts.iter().filter(|a| a.location == l.index)) != l.totals {
                problems.push(format!("totals of location {} do not add up", l.uri));
            }
        }
        if status_of(&self.artifacts) != self.status {
            problems.push(format!(
                "status {:?} does not follow from the artifact outcomes",
                self.status
            ));
        }
        for a in &self.artifacts {
            if a.outcome == Outcome::Disposed && !a.verification.verified {
                problems.push(format!(
                    "artifact {} is marked disposed without verification",
                    a.id
                ));
            }
            if a.sanitization.category == Category::Clear && a.kind != ArtifactKind::File {
                problems.push(format!("artifact {} claims clear for a non-file", a.id));
            }
        }
        // Certificates from before the table have none to check.
        if !self.sanitization.is_empty() {
            let mut m = standards::Methods::default();
            self.artifacts.iter().for_each(|a| m.add(a));
            if m.rows() != self.sanitization {
                problems
                    .push("the sanitization table does not follow from the artifacts".to_string());
            }
        }
        problems
    }
}

pub mod evidence;
pub mod files;
pub mod fleet;
pub mod recheck;
pub mod standards;
pub mod verify;

pub use evidence::{Attachment, CoSignature, Evidence, Naming};
pub use files::RunFiles;

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(id: u32, path: &str, passes: serde_json::Value) -> CertArtifact {
        serde_json::from_value(serde_json::json!({
            "id": id, "location": 1, "kind": "file", "path": path, "size": 5,
            "sha256": "ab", "method": "overwrite",
            "sanitization": {"category": "logical", "reason": "copy-on-write"},
            "passes": passes,
            "verification": {"method": "read-back", "verified": id % 2 == 0},
            "outcome": if id % 2 == 0 { "disposed" } else { "failed" },
            "reason": "a \"quoted\"\nreason\t—",
        }))
        .unwrap()
    }

    /// Spooled artifacts serialize to exactly the bytes the same artifacts
    /// held in memory do, at the certificate's depth, and read back equal.
    #[test]
    fn a_spooled_certificate_serializes_as_one_held_in_memory() {
        #[derive(Serialize)]
        struct Top<A> {
            before: Vec<u8>,
            artifacts: A,
            after: u8,
        }
        let held = vec![
            artifact(1, "/m/ü \"x\".bin", serde_json::json!([])),
            artifact(
                2,
                "/m/b",
                serde_json::json!([{"pass": 1, "pattern": "random", "written_sha256": "cd"}]),
            ),
        ];
        for held in [held.clone(), Vec::new()] {
            let (mut spool, mut w) = CertSpool::new().unwrap();
            for a in &held {
                spool.push(&mut w, a).unwrap();
            }
            std::io::Write::flush(&mut w).unwrap();
            fn bytes(artifacts: impl Serialize) -> String {
                let top = Top {
                    before: vec![1, 2],
                    artifacts,
                    after: 3,
                };
                String::from_utf8(crate::util::to_json_bytes(&top)).unwrap()
            }
            assert_eq!(bytes(&spool), bytes(&held));
            let mut undisposed = Vec::new();
            spool
                .each_undisposed(&mut |a| undisposed.push(a.id))
                .unwrap();
            assert_eq!(undisposed, if held.is_empty() { vec![] } else { vec![1] });
            let back: Vec<CertArtifact> = spool.iter().map(Result::unwrap).collect();
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&held).unwrap()
            );
        }
    }
}
