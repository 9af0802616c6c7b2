//! Write-once archive in an S3 bucket with Object Lock: the bundle is put in
//! COMPLIANCE mode with a retain-until date, so the server refuses to delete
//! that version or shorten its retention, even for the account's root user.

use super::{About, Stored, bundle_name};
use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::store::s3::{S3, worm};

fn key_for(prefix: &str, sha: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        format!("{}/{}", super::BUNDLES, bundle_name(sha))
    } else {
        format!("{p}/{}/{}", super::BUNDLES, bundle_name(sha))
    }
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
    let default_days = worm::default_retention(s3, bucket)?;
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
    if let Some(h) = worm::head(s3, bucket, &key)?
        && h.sha256.as_deref() == Some(sha.as_str())
    {
        return Ok(Stored {
            location,
            sha256: sha,
            bytes: tar.len() as u64,
            new: false,
            version_id: h.version_id,
            retain_until: h.retain_until,
            index_entry: None,
        });
    }
    let until = crate::sign::now_unix() + days * 86_400;
    let version_id = worm::put_locked(
        s3,
        (bucket, &key),
        tar,
        &sha,
        &[
            ("certificate", &about.certificate),
            ("model", &about.model),
            ("status", &about.status),
        ],
        until,
    )?;
    Ok(Stored {
        location,
        sha256: sha,
        bytes: tar.len() as u64,
        new: true,
        version_id,
        retain_until: time::OffsetDateTime::from_unix_timestamp(until)
            .ok()
            .map(crate::util::rfc3339),
        index_entry: None,
    })
}

/// Check every bundle under `prefix/bundles/`: content matches its name, and
/// it is locked in COMPLIANCE mode until a future date. Returns the number of
/// bundles and the problems found.
pub fn verify(s3: &S3, bucket: &str, prefix: &str) -> Result<(usize, Vec<String>)> {
    worm::default_retention(s3, bucket)?;
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
        match worm::get_locked(s3, bucket, &v.key, &v.version_id) {
            Err(e) => problems.push(format!("{at}: cannot read: {e}")),
            Ok(got) => {
                match got.body {
                    Ok(b) if sha256_hex(&b) == want => {}
                    Ok(_) => problems.push(format!("{at}: content does not match its name")),
                    Err(e) => problems.push(format!("{at}: cannot read: {e}")),
                }
                if !got.compliance {
                    problems.push(format!("{at}: not locked in COMPLIANCE mode"));
                }
                if got.until.is_none_or(|u| u <= now) {
                    problems.push(format!("{at}: its retention has expired or is missing"));
                }
            }
        }
    }
    Ok((n, problems))
}
