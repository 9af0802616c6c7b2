//! What the certificate says in the terms of the standards an auditor
//! reads it against: NIST SP 800-88 Rev. 2 and IEEE 2883-2022 (method and
//! technique of each disposal, and how it was validated), ISO/IEC
//! 27040:2024, ETSI EN 304 223, and the field table of the withdrawn
//! NIST SP 800-88 Rev. 1 (Appendix G), which auditors still ask for.
//!
//! The clauses cited are those checked against the standards' published
//! summaries; README.md ("Standards") says which text could not be read
//! in full and is cited by section title only.

use super::{CertArtifact, Reference};
use crate::journal::Outcome;
use crate::plan::{ArtifactKind, Category};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The artifacts disposed of and verified by one sanitization method and
/// technique (NIST SP 800-88 Rev. 2 section 3.1; IEEE 2883-2022 clause 5),
/// and the validation that showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sanitized {
    /// `Clear`, `Purge`, or `none: logical sanitization` where the medium
    /// lets a file-level technique claim neither.
    pub method: String,
    pub technique: String,
    pub artifacts: u64,
    pub bytes: u64,
    pub validation: String,
}

/// Method, technique and validation of one disposed and verified artifact
/// that held data or a key; `None` for names (symlinks, folders, delete
/// markers, uploads' parts are data too) and for anything not disposed.
fn classify(a: &CertArtifact) -> Option<(&'static str, &'static str, &'static str)> {
    if a.outcome != Outcome::Disposed || !a.verification.verified {
        return None;
    }
    const LOGICAL: &str = "none: logical sanitization";
    const OVERWRITE_CHECK: &str =
        "read-back of the last pass compared by SHA-256, then the name proven absent";
    const LISTING_CHECK: &str =
        "a complete version listing shows none of them, and sampled requests by version answer 404";
    Some(match (a.kind, a.sanitization.category) {
        (ArtifactKind::KmsKey, _) => (
            "Purge",
            "cryptographic erase: externally managed key (KMS key deleted after its waiting period)",
            "the key asked for again (DescribeKey): KMS no longer has it",
        ),
        (ArtifactKind::LuksVolume, _) => (
            "Purge",
            "cryptographic erase: every LUKS key slot erased (cryptsetup luksErase)",
            "the volume's header read back: no key slot remains",
        ),
        (ArtifactKind::File, Category::Clear) => ("Clear", "overwrite", OVERWRITE_CHECK),
        (ArtifactKind::File, Category::CryptoErase) => (
            "Purge",
            "cryptographic erase of the encrypted medium",
            OVERWRITE_CHECK,
        ),
        (ArtifactKind::File, Category::Logical) => (
            LOGICAL,
            "overwrite through the file system (the medium may keep earlier copies of the blocks)",
            OVERWRITE_CHECK,
        ),
        (ArtifactKind::S3Version | ArtifactKind::S3Upload, Category::CryptoErase) => (
            "Purge",
            "cryptographic erase: every version deleted and its KMS key destroyed",
            LISTING_CHECK,
        ),
        (ArtifactKind::S3Version | ArtifactKind::S3Upload, _) => (
            LOGICAL,
            "deletion of every object version and upload through the store's API",
            LISTING_CHECK,
        ),
        (ArtifactKind::GcsGeneration, _) => (
            LOGICAL,
            "deletion of every object generation through the store's API",
            "a complete listing of every generation shows none of them, and sampled requests by generation answer 404",
        ),
        (ArtifactKind::GcsLifecycle, _) => (
            LOGICAL,
            "deletion of every generation by the store's lifecycle engine",
            "a complete listing of every generation of the folder shows it empty",
        ),
        (ArtifactKind::S3Lifecycle, _) => (
            LOGICAL,
            "deletion of every version by the store's lifecycle engine",
            "a complete version listing of the folder shows it empty",
        ),
        (
            ArtifactKind::Symlink
            | ArtifactKind::Dir
            | ArtifactKind::S3DeleteMarker
            | ArtifactKind::MlflowVersion
            | ArtifactKind::MlflowAlias
            | ArtifactKind::MlflowRun
            | ArtifactKind::MlflowModel,
            _,
        ) => {
            return None;
        }
    })
}

/// The sanitization table being added up, artifact by artifact.
#[derive(Debug, Default)]
pub struct Methods(BTreeMap<(String, String, String), (u64, u64)>);

impl Methods {
    pub fn add(&mut self, a: &CertArtifact) {
        if let Some((m, t, v)) = classify(a) {
            let e = self.0.entry((m.into(), t.into(), v.into())).or_default();
            e.0 += 1;
            e.1 += a.size;
        }
    }

    /// Add another certificate's rows (a fleet's parts).
    pub fn merge(&mut self, rows: &[Sanitized]) {
        for r in rows {
            let key = (r.method.clone(), r.technique.clone(), r.validation.clone());
            let e = self.0.entry(key).or_default();
            e.0 += r.artifacts;
            e.1 += r.bytes;
        }
    }

    /// The rows, Purge before Clear before logical sanitization.
    pub fn rows(self) -> Vec<Sanitized> {
        let rank = |m: &str| match m {
            "Purge" => 0,
            "Clear" => 1,
            _ => 2,
        };
        let mut rows: Vec<Sanitized> = self
            .0
            .into_iter()
            .map(
                |((method, technique, validation), (artifacts, bytes))| Sanitized {
                    method,
                    technique,
                    artifacts,
                    bytes,
                    validation,
                },
            )
            .collect();
        rows.sort_by_key(|r| rank(&r.method));
        rows
    }
}

/// Each provision this certificate gives evidence for, and where.
pub fn references() -> Vec<Reference> {
    let r = |standard: &str, provision: &str, evidence: &str| Reference {
        standard: standard.into(),
        provision: provision.into(),
        evidence: evidence.into(),
    };
    vec![
        r(
            "ETSI EN 304 223",
            "5.5.1-1",
            "the Data Custodian approved the plan (plan.approvals) and co-signs this certificate",
        ),
        r(
            "ETSI EN 304 223",
            "5.5.1-2",
            "the model's data and configuration were disposed of as listed in artifacts, with verification",
        ),
        r(
            "NIST SP 800-88 Rev. 2",
            "3.1 Sanitization methods (Clear, Purge) and techniques",
            "sanitization: each method and technique with its artifacts; each artifact's sanitization",
        ),
        r(
            "NIST SP 800-88 Rev. 2",
            "Cryptographic erase (externally managed keys)",
            "sanitization rows whose technique is cryptographic erase; the KMS key artifacts and their deletion dates",
        ),
        r(
            "NIST SP 800-88 Rev. 2",
            "Sanitization validation",
            "sanitization.validation and each artifact's verification; locations' absence proofs",
        ),
        r(
            "IEEE 2883-2022",
            "5 Sanitization methods (Clear, Purge) and techniques",
            "sanitization: the same rows, whose terms are IEEE 2883's",
        ),
        r(
            "ISO/IEC 27040:2024",
            "10 Storage sanitization",
            "sanitization and the verification of each artifact; the signed record of this certificate",
        ),
        r(
            "NIST SP 800-88 Rev. 1 (withdrawn 26 September 2025)",
            "Appendix G certificate fields",
            "nist_sp_800_88",
        ),
    ]
}
