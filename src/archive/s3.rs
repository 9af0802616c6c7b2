//! Write-once archive in an S3 bucket with Object Lock: the bundle is put in
//! COMPLIANCE mode with a retain-until date, so the server refuses to delete
//! that version or shorten its retention, even for the account's root user.

use super::{About, Stored, bundle_name};
use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::store::s3::{S3, describe, is_not_found};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode, ObjectLockRetentionMode,
};
use base64::Engine;

fn key_for(prefix: &str, sha: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        format!("{}/{}", super::BUNDLES, bundle_name(sha))
    } else {
        format!("{p}/{}/{}", super::BUNDLES, bundle_name(sha))
    }
}

/// The bucket's object lock: Ok(default retention in days, if any), or an
/// input error when the bucket has no object lock.
fn lock_config(s3: &S3, bucket: &str) -> Result<Option<i64>> {
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

/// Put `tar` under `prefix/bundles/<sha256>.tar` in COMPLIANCE mode.
pub fn store(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    tar: &[u8],
    about: &About,
    retain_days: Option<u32>,
) -> Result<Stored> {
    let default_days = lock_config(s3, bucket)?;
    let days = match (retain_days, default_days) {
        (Some(d), _) => i64::from(d),
        (None, Some(d)) => d,
        (None, None) => {
            return Err(Error::input(format!(
                "s3://{bucket}: no default COMPLIANCE retention on the bucket; give --retain-days"
            )));
        }
    };
    if days < 1 {
        return Err(Error::input("--retain-days must be at least 1"));
    }
    let sha = sha256_hex(tar);
    let key = key_for(prefix, &sha);
    let location = format!("s3://{bucket}/{key}");
    // Already archived (content-addressed): nothing to write.
    match s3.block_on(s3.client().head_object().bucket(bucket).key(&key).send()) {
        Ok(h)
            if h.metadata()
                .and_then(|m| m.get("sha256"))
                .map(String::as_str)
                == Some(&sha) =>
        {
            return Ok(Stored {
                location,
                sha256: sha,
                bytes: tar.len() as u64,
                new: false,
                version_id: h.version_id().map(str::to_string),
                retain_until: h
                    .object_lock_retain_until_date()
                    .map(|t| crate::store::s3::time(Some(t))),
                index_entry: None,
            });
        }
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(Error::input(format!(
                "{location}: cannot check for an earlier copy: {}",
                describe(&e)
            )));
        }
    }
    let until = crate::sign::now_unix() + days * 86_400;
    let sha_b64 =
        base64::engine::general_purpose::STANDARD.encode(hex::decode(&sha).expect("hex digest"));
    let put = s3
        .block_on(
            s3.client()
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(ByteStream::from(tar.to_vec()))
                .content_type("application/x-tar")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(sha_b64)
                .metadata("sha256", &sha)
                .metadata("certificate", &about.certificate)
                .metadata("model", &about.model)
                .metadata("status", &about.status)
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from_secs(until))
                .send(),
        )
        .map_err(|e| Error::input(format!("{location}: cannot store: {}", describe(&e))))?;
    Ok(Stored {
        location,
        sha256: sha,
        bytes: tar.len() as u64,
        new: true,
        version_id: put.version_id().map(str::to_string),
        retain_until: Some(crate::store::s3::time(Some(&DateTime::from_secs(until)))),
        index_entry: None,
    })
}

/// Check every bundle under `prefix/bundles/`: content matches its name, and
/// it is locked in COMPLIANCE mode until a future date. Returns the number of
/// bundles and the problems found.
pub fn verify(s3: &S3, bucket: &str, prefix: &str) -> Result<(usize, Vec<String>)> {
    lock_config(s3, bucket)?;
    let dir = key_for(prefix, "x");
    let dir = &dir[..dir.len() - bundle_name("x").len()];
    let mut versions = Vec::new();
    s3.list_versions(bucket, &crate::store::s3::Scope::new(dir), |v| {
        versions.push(v)
    })?;
    let now = crate::sign::now_unix();
    let mut problems = Vec::new();
    let mut n = 0;
    for v in versions {
        let at = format!("s3://{bucket}/{} (version {})", v.key, v.version_id);
        if v.is_marker {
            problems.push(format!("{at}: a delete marker hides the bundle"));
            continue;
        }
        n += 1;
        let want = v.key[dir.len()..].trim_end_matches(".tar").to_string();
        let got = s3.block_on(async {
            let o = s3
                .client()
                .get_object()
                .bucket(bucket)
                .key(&v.key)
                .version_id(&v.version_id)
                .send()
                .await?;
            let mode = o.object_lock_mode().cloned();
            let until = o.object_lock_retain_until_date().map(|t| t.secs());
            let body = o.body.collect().await.map(|b| b.into_bytes());
            Ok::<_, aws_sdk_s3::error::SdkError<_>>((mode, until, body))
        });
        match got {
            Err(e) => problems.push(format!("{at}: cannot read: {}", describe(&e))),
            Ok((mode, until, body)) => {
                match body {
                    Ok(b) if sha256_hex(&b) == want => {}
                    Ok(_) => problems.push(format!("{at}: content does not match its name")),
                    Err(e) => problems.push(format!("{at}: cannot read: {e}")),
                }
                if mode != Some(ObjectLockMode::Compliance) {
                    problems.push(format!("{at}: not locked in COMPLIANCE mode"));
                }
                if until.is_none_or(|u| u <= now) {
                    problems.push(format!("{at}: its retention has expired or is missing"));
                }
            }
        }
    }
    Ok((n, problems))
}
