//! Write-once objects in a bucket with Object Lock, for the certificate
//! archive (`crate::archive`): the bucket's default retention, a HEAD of
//! what is there, a PUT in COMPLIANCE mode, a GET with its lock state.

use super::{S3, describe, is_not_found};
use crate::error::{Error, Result};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode,
};
use base64::Engine;

/// The bucket's object lock: Ok(default COMPLIANCE retention in days, if
/// any), or an input error when the bucket has no object lock.
pub fn default_retention(s3: &S3, bucket: &str) -> Result<Option<i64>> {
    let r = s3.block_on(
        s3.client()
            .get_object_lock_configuration()
            .bucket(bucket)
            .send(),
    );
    let no_lock = || {
        Error::input(format!(
            "s3://{bucket}: the bucket has no S3 Object Lock; an archive must be write-once (create it with object lock enabled)"
        ))
    };
    let out = match r {
        Ok(o) => o,
        Err(e) if is_not_found(&e) => return Err(no_lock()),
        Err(e) => {
            return Err(Error::input(format!(
                "s3://{bucket}: cannot read the object lock configuration: {}",
                describe(&e)
            )));
        }
    };
    let Some(conf) = out.object_lock_configuration() else {
        return Err(no_lock());
    };
    if conf.object_lock_enabled() != Some(&ObjectLockEnabled::Enabled) {
        return Err(no_lock());
    }
    Ok(conf
        .rule()
        .and_then(|r| r.default_retention())
        .and_then(|d| {
            if d.mode() != Some(&ObjectLockRetentionMode::Compliance) {
                return None;
            }
            d.days()
                .map(i64::from)
                .or_else(|| d.years().map(|y| i64::from(y) * 366))
        }))
}

/// What a HEAD tells of a write-once object.
#[derive(Debug, Clone)]
pub struct Head {
    /// The `sha256` user metadata decom wrote.
    pub sha256: Option<String>,
    pub version_id: Option<String>,
    /// RFC 3339.
    pub retain_until: Option<String>,
}

/// HEAD `key`: None when there is no object there.
pub fn head(s3: &S3, bucket: &str, key: &str) -> Result<Option<Head>> {
    match s3.block_on(s3.client().head_object().bucket(bucket).key(key).send()) {
        Ok(h) => Ok(Some(Head {
            sha256: h.metadata().and_then(|m| m.get("sha256")).cloned(),
            version_id: h.version_id().map(str::to_string),
            retain_until: h
                .object_lock_retain_until_date()
                .map(|t| super::time(Some(t))),
        })),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::input(format!(
            "s3://{bucket}/{key}: cannot check for an earlier copy: {}",
            describe(&e)
        ))),
    }
}

/// PUT `body` at `key` locked in COMPLIANCE mode until `until` (Unix
/// seconds), with its SHA-256 (hex) checked by the store and kept as
/// metadata beside `metadata`. Returns the version id.
pub fn put_locked(
    s3: &S3,
    (bucket, key): (&str, &str),
    body: &[u8],
    sha256: &str,
    metadata: &[(&str, &str)],
    until: i64,
) -> Result<Option<String>> {
    let sha_b64 = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(sha256).map_err(|e| Error::input(e.to_string()))?);
    let mut put = s3
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .content_type("application/x-tar")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(sha_b64)
        .metadata("sha256", sha256)
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(until));
    for (k, v) in metadata {
        put = put.metadata(*k, *v);
    }
    let out = s3.block_on(put.send()).map_err(|e| {
        Error::input(format!(
            "s3://{bucket}/{key}: cannot store: {}",
            describe(&e)
        ))
    })?;
    Ok(out.version_id().map(str::to_string))
}

/// One version read back with its lock.
pub struct Got {
    pub body: std::result::Result<Vec<u8>, String>,
    /// Locked in COMPLIANCE mode.
    pub compliance: bool,
    /// Retain-until, Unix seconds.
    pub until: Option<i64>,
}

/// GET one version with its lock state (Err: why it cannot be read).
pub fn get_locked(
    s3: &S3,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> std::result::Result<Got, String> {
    s3.block_on(async {
        let o = s3
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let compliance = o.object_lock_mode() == Some(&ObjectLockMode::Compliance);
        let until = o.object_lock_retain_until_date().map(|t| t.secs());
        let body = o
            .body
            .collect()
            .await
            .map(|b| b.into_bytes().to_vec())
            .map_err(|e| e.to_string());
        Ok(Got {
            body,
            compliance,
            until,
        })
    })
}
