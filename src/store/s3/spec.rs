//! What the manifest and the plan record of an S3 location, with no
//! client: the `[s3]` settings, the endpoint, the folder a location covers
//! and the `s3://` URI. The lower layers (manifest, plan, journal) import
//! this file and nothing else of the S3 store.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Requests in flight at once (DeleteObjects batches, HEADs), unless the
/// manifest's `[s3] concurrency` or `--s3-concurrency` says otherwise.
/// (At 32 the proof's 64 sampled HEADs take two round trips instead of
/// eight. The default stays 8: it sets how hard every user drives their
/// store, and the one benchmark that might gain is bound by the server:
/// on Garage, 32 against 8 gave medians of 2.05 and 2.00 s over 10
/// alternating rounds of 10,000 objects.)
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The most requests in flight a setting may ask for.
pub const MAX_CONCURRENCY: usize = 1024;
/// Keys per DeleteObjects request (the S3 maximum).
pub const DELETE_BATCH: usize = 1000;
/// Keys per listing page (the S3 maximum, and what stores answer).
pub const LIST_PAGE: usize = 1000;
/// Pieces of a split listing asked for ahead of the one being read: the
/// pages waiting in memory, at most (the request bound still holds).
pub const LIST_AHEAD: usize = 16;
/// Attempts per request (first try + retries).
pub const MAX_ATTEMPTS: u32 = 6;
/// Purged versions HEADed (with their version id) per location for the
/// absence proof in `verify = "sample"` mode, unless `verify_sample` says
/// otherwise; all of them when there are fewer.
pub const DEFAULT_VERIFY_SAMPLE: usize = 64;

/// Which versions trace HEADs for details the listing does not carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InspectMode {
    /// Only where a fact needs it: lock state when the bucket has Object
    /// Lock, the checksum for `match = "hash"` and `hash_remote`. Size, ETag,
    /// storage class and times come from the listing.
    #[default]
    Needed,
    /// Every version, to record its encryption (SSE type, KMS key) too.
    Each,
}

/// How execute proves that purged versions are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// A complete listing of the location (S3 lists strongly consistently
    /// after a delete) plus HEAD with the version id on a random sample.
    #[default]
    Sample,
    /// The listing plus HEAD of every purged version: for stores whose
    /// listings are not strongly consistent (Ceph multisite, indexless buckets).
    Each,
}

/// How to reach S3: from flags, the manifest's `[s3]` table, or the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Stream and hash versions that carry no SHA-256 checksum.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hash_remote: bool,
    /// Requests in flight at once (default [`DEFAULT_CONCURRENCY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Which versions trace HEADs (default [`InspectMode::Needed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<InspectMode>,
    /// How execute proves absence (default [`VerifyMode::Sample`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyMode>,
    /// Versions HEADed per location in sample mode (default [`DEFAULT_VERIFY_SAMPLE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_sample: Option<usize>,
}

impl Settings {
    /// Values set in `over` win.
    pub fn overlay(&self, over: &Settings) -> Settings {
        Settings {
            endpoint_url: over
                .endpoint_url
                .clone()
                .or_else(|| self.endpoint_url.clone()),
            region: over.region.clone().or_else(|| self.region.clone()),
            path_style: over.path_style.or(self.path_style),
            hash_remote: over.hash_remote || self.hash_remote,
            concurrency: over.concurrency.or(self.concurrency),
            inspect: over.inspect.or(self.inspect),
            verify: over.verify.or(self.verify),
            verify_sample: over.verify_sample.or(self.verify_sample),
        }
    }

    /// The absence proof asked for: the mode and, in sample mode, how many
    /// purged versions to HEAD. A sample of 0 would prove nothing.
    pub fn proof(&self) -> Result<(VerifyMode, usize)> {
        let n = self.verify_sample.unwrap_or(DEFAULT_VERIFY_SAMPLE);
        if n == 0 || n > 1_000_000 {
            return Err(Error::input(format!(
                "S3 verify_sample {n} is out of range (1 to 1000000 versions HEADed per location)"
            )));
        }
        Ok((self.verify.unwrap_or_default(), n))
    }

    /// Requests in flight: the setting, checked, or the default.
    pub fn concurrency(&self) -> Result<usize> {
        match self.concurrency {
            None => Ok(DEFAULT_CONCURRENCY),
            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
            Some(n) => Err(Error::input(format!(
                "S3 concurrency {n} is out of range (1 to {MAX_CONCURRENCY} requests in flight)"
            ))),
        }
    }
}

/// The endpoint actually used, recorded in the plan so execute talks to the
/// same store the custodian approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub endpoint_url: Option<String>,
    pub region: String,
    pub path_style: bool,
}

pub use crate::util::Scope;

/// Parse `s3://bucket/prefix`.
pub fn parse_uri(uri: &str) -> Result<(String, String)> {
    let bad = |m: &str| Err(Error::input(format!("location {uri:?}: {m}")));
    let Some(rest) = uri.strip_prefix("s3://") else {
        return bad("not an s3:// URI");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !ok {
        return bad(&format!(
            "{bucket:?} is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"
        ));
    }
    if prefix.contains('\0') || prefix.len() > 1024 {
        return bad("the key prefix is not valid");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// A bucket feature a store can lack (it answers 501 NotImplemented for
/// its calls): recorded in the plan's bucket facts, never guessed. Written
/// as the words plans have always used; a word this version does not know
/// (from a later one) is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Feature {
    Versioning,
    ObjectLock,
    Replication,
    Lifecycle,
    Other(String),
}

impl Feature {
    pub fn as_str(&self) -> &str {
        match self {
            Feature::Versioning => "versioning",
            Feature::ObjectLock => "object lock",
            Feature::Replication => "replication",
            Feature::Lifecycle => "lifecycle",
            Feature::Other(s) => s,
        }
    }
}

impl From<String> for Feature {
    fn from(s: String) -> Self {
        match s.as_str() {
            "versioning" => Feature::Versioning,
            "object lock" => Feature::ObjectLock,
            "replication" => Feature::Replication,
            "lifecycle" => Feature::Lifecycle,
            _ => Feature::Other(s),
        }
    }
}

impl From<Feature> for String {
    fn from(f: Feature) -> Self {
        f.as_str().to_string()
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
