//! The `--json` records, one JSON object per line on stdout: `type` names
//! the record, the other fields are the variant's. Several commands write
//! a `plan` or a `certificate` record with fields of their own. Keys come
//! out in alphabetical order (serde_json's map), `type` among them.

use crate::archive::Stored;
use crate::cert::fleet::Coverage;
use crate::cert::{Status, verify::Check};
use crate::manifest::{Model, NotSearched};
use crate::plan::fleet::HostTotals;
use crate::plan::{PlanLocation, Risk, Totals};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record<'a> {
    /// `trace`: the plan written.
    #[serde(rename = "plan")]
    Traced {
        path: &'a Path,
        sha256: &'a str,
        artifacts: u64,
        bytes: u64,
        residual_risks: usize,
        components_not_searched: &'a [NotSearched],
        hashes_ignored: &'a [NotSearched],
    },
    /// `plan merge`: the fleet plan written.
    #[serde(rename = "plan")]
    Merged {
        path: &'a Path,
        sha256: &'a str,
        hosts: &'a [HostTotals],
        s3_locations: usize,
        totals: &'a Totals,
    },
    /// `show PLAN`.
    #[serde(rename = "plan")]
    Shown {
        path: &'a Path,
        model: &'a Model,
        profile: &'a str,
        residual_risks: &'a [Risk],
        totals: &'a Totals,
        locations: &'a [PlanLocation],
    },
    /// `approve`: the custodian's signature over the plan.
    Approval {
        plan: &'a Path,
        plan_sha256: String,
        signature: &'a Path,
        principal: &'a str,
        key_fingerprint: String,
    },
    /// `execute`: the certificate written and signed.
    #[serde(rename = "certificate")]
    Executed {
        path: &'a Path,
        signature: &'a Path,
        journal: &'a Path,
        status: Status,
        totals: &'a crate::cert::Totals,
    },
    /// `collect`: the fleet certificate written and signed.
    #[serde(rename = "certificate")]
    Collected {
        path: &'a Path,
        signature: &'a Path,
        status: Status,
        coverage: &'a Coverage,
        totals: &'a crate::cert::Totals,
    },
    /// `show CERTIFICATE`.
    #[serde(rename = "certificate")]
    Certificate {
        id: &'a str,
        status: Status,
        totals: &'a crate::cert::Totals,
        model: &'a Model,
    },
    /// `cosign`: the custodian's co-signature.
    Cosignature {
        certificate: &'a Path,
        signature: &'a Path,
        principal: &'a str,
        key_fingerprint: &'a str,
    },
    /// `verify`: one check, then the verdict.
    Check(&'a Check),
    Verdict {
        ok: bool,
        certificate: &'a Path,
        ssh_keygen: &'a [String],
    },
    /// `archive`: the bundle stored.
    Archived(&'a Stored),
    /// `archive --verify`: the store checked.
    Archive {
        uri: &'a str,
        bundles: usize,
        ok: bool,
        problems: &'a [String],
        head: Option<&'a str>,
    },
    /// `hash`: one file's SHA-256.
    Hash { path: &'a Path, sha256: &'a str },
    /// `keygen`: the key pair written.
    Key {
        private: &'a Path,
        public: String,
        fingerprint: &'a str,
        encrypted: bool,
    },
    /// `demo`: where the demo's certificate is and whether it verified.
    Demo {
        dir: &'a Path,
        certificate: &'a Path,
        status: Status,
        verified: bool,
    },
}
