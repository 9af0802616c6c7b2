//! What a plan records of a Google Cloud Storage location and its
//! artifacts: the bucket's facts, every generation, and a folder handed
//! to the bucket's lifecycle rules.

use super::{Matched, Retention};
use crate::store::gcs::spec::Endpoint;
use serde::{Deserialize, Serialize};

/// A `gs://bucket/prefix` location as trace found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsLocation {
    pub bucket: String,
    pub prefix: String,
    /// Which object names the location covers, in words.
    pub covers: String,
    /// The endpoint trace used; execute uses the same one.
    pub endpoint: Endpoint,
    pub facts: GcsFacts,
}

/// The bucket's facts, from its resource (`buckets.get`). A field the
/// store did not return is recorded as unknown (`None`), never as off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsFacts {
    /// Object Versioning: deletes and overwrites keep noncurrent generations.
    pub versioning: bool,
    /// The soft-delete retention in seconds (0: off); `None`: the store
    /// reported no soft-delete policy, so whether deleted generations stay
    /// restorable is unknown.
    pub soft_delete_seconds: Option<u64>,
    /// The bucket's retention policy: seconds every generation is kept
    /// after its creation, and whether the policy is locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retention_locked: bool,
    /// New objects get an event-based hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_event_based_hold: bool,
    /// The bucket's lifecycle rules as the store returned them (JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_rules: Vec<String>,
    /// The Cloud KMS key new objects are encrypted with by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_kms_key: Option<String>,
    /// Location and its type (region, dual-region, multi-region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_type: Option<String>,
}

impl GcsFacts {
    /// The soft-delete policy in words.
    pub fn soft_delete(&self) -> String {
        match self.soft_delete_seconds {
            None => "unknown (the store reports no soft-delete policy)".into(),
            Some(0) => "off".into(),
            Some(s) => format!("on, {}", duration(s)),
        }
    }
}

/// Seconds in the largest whole unit that fits (`7 days`, `90 s`).
pub fn duration(s: u64) -> String {
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{s} s"),
    }
}

/// One generation of an object: deleted by generation, with its
/// metageneration as a precondition (and its generation too while live).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsGeneration {
    pub bucket: String,
    pub name: String,
    /// Decimal, as the JSON API writes it.
    pub generation: String,
    pub metageneration: String,
    /// The live generation at trace (the others are noncurrent).
    pub live: bool,
    pub size: u64,
    pub created: String,
    /// When it became noncurrent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_since: Option<String>,
    /// Base64, as the JSON API writes them; composite objects have no MD5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Streamed and hashed (`hash_remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary_hold: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_based_hold: bool,
    /// Object retention (mode and retain-until time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Until when the bucket's retention policy keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    pub matched: Matched,
}

impl GcsGeneration {
    /// `gs://bucket/name#generation`, as gcloud writes a generation.
    pub fn uri(&self) -> String {
        format!("gs://{}/{}#{}", self.bucket, self.name, self.generation)
    }

    /// Why no delete may remove it at `now`, if anything keeps it.
    pub fn kept(&self, now: time::OffsetDateTime) -> Option<String> {
        let after_now = |t: &str| crate::util::parse_rfc3339(t).is_ok_and(|t| t > now);
        let mut why = Vec::new();
        if self.temporary_hold {
            why.push("a temporary hold".to_string());
        }
        if self.event_based_hold {
            why.push("an event-based hold".to_string());
        }
        if let Some(r) = &self.retention
            && after_now(&r.until)
        {
            why.push(format!("{} object retention until {}", r.mode, r.until));
        }
        if let Some(u) = &self.retained_until
            && after_now(u)
        {
            why.push(format!("the bucket's retention policy until {u}"));
        }
        (!why.is_empty()).then(|| why.join(" and "))
    }
}

/// A folder whose generations the bucket's lifecycle rules delete: the
/// exact rules execute merges into the bucket (the custodian approves
/// them), and what trace counted there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsLifecycle {
    pub bucket: String,
    /// The folder (ends in `/`, or empty for the whole bucket).
    pub prefix: String,
    /// The rules, as the JSON execute adds to `lifecycle.rule`.
    pub rules: Vec<String>,
    pub generations: u64,
    pub bytes: u64,
}
