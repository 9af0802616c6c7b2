//! KMS, for cryptographic erase: what a key is and who else uses it
//! (trace), scheduling its deletion (execute), and whether it still exists
//! (resume, recheck). Same endpoint, credentials and region as S3.

use super::{Listed, S3, Scope, describe, not_implemented};
use aws_sdk_s3::error::ProvideErrorMetadata;
use std::collections::HashMap;

/// What DescribeKey and its neighbours say of one key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub arn: String,
    pub key_id: String,
    /// "CUSTOMER" or "AWS".
    pub manager: String,
    /// "Enabled", "Disabled", "PendingDeletion", …
    pub state: String,
    pub multi_region: bool,
    /// When KMS will delete it, for a key pending deletion.
    pub deletion_date: Option<String>,
}

/// DescribeKey: `Ok(None)` when KMS says the key does not exist (deleted,
/// or never was); any other failure is an error.
pub fn describe_key(s3: &S3, key: &str) -> Result<Option<KeyInfo>, String> {
    let r = s3.block_on(s3.kms().describe_key().key_id(key).send());
    let meta = match r {
        Ok(o) => o.key_metadata,
        Err(e) => {
            use aws_sdk_kms::error::ProvideErrorMetadata;
            let status = e.raw_response().map(|r| r.status().as_u16());
            return match e.code() {
                Some("NotFoundException") => Ok(None),
                // Ceph RGW answers 405 to every KMS request: its SSE-KMS
                // keys live in a backend no S3 client reaches.
                None if matches!(status, Some(404 | 405 | 501)) => Err(format!(
                    "KMS DescribeKey {key}: the endpoint has no KMS API (HTTP {}): cryptographic erase needs the AWS KMS-compatible service that holds the bucket's keys, at the same endpoint",
                    status.unwrap_or_default()
                )),
                _ => Err(format!("KMS DescribeKey {key}: {}", describe(&e))),
            };
        }
    };
    let Some(m) = meta else {
        return Err(format!(
            "KMS DescribeKey {key}: no key metadata in the answer"
        ));
    };
    Ok(Some(KeyInfo {
        arn: m.arn().unwrap_or(m.key_id()).to_string(),
        key_id: m.key_id().to_string(),
        manager: m
            .key_manager()
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        state: m
            .key_state()
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        multi_region: m.multi_region().unwrap_or(false),
        deletion_date: m.deletion_date().map(|d| super::time(Some(d))),
    }))
}

/// The key's aliases, tags ("key=value") and number of grants.
pub fn usage(s3: &S3, key_id: &str) -> Result<(Vec<String>, Vec<String>, u64), String> {
    let kms = s3.kms();
    let aliases = s3
        .block_on(kms.list_aliases().key_id(key_id).send())
        .map_err(|e| format!("KMS ListAliases {key_id}: {}", describe(&e)))?
        .aliases
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| a.alias_name)
        .collect();
    let tags = s3
        .block_on(kms.list_resource_tags().key_id(key_id).send())
        .map_err(|e| format!("KMS ListResourceTags {key_id}: {}", describe(&e)))?
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}={}", t.tag_key, t.tag_value))
        .collect();
    let grants = s3
        .block_on(kms.list_grants().key_id(key_id).send())
        .map_err(|e| format!("KMS ListGrants {key_id}: {}", describe(&e)))?
        .grants
        .map(|g| g.len() as u64)
        .unwrap_or(0);
    Ok((aliases, tags, grants))
}

/// ScheduleKeyDeletion with the approved waiting period; returns the date
/// KMS will delete the key.
pub fn schedule_deletion(s3: &S3, key_arn: &str, days: i32) -> Result<String, String> {
    // By key id: KMS takes the ARN too, but not every KMS-compatible
    // server does (moto 5.1 answers 500).
    let id = key_arn
        .rsplit_once(":key/")
        .map(|(_, id)| id)
        .unwrap_or(key_arn);
    let r = s3
        .block_on(
            s3.kms()
                .schedule_key_deletion()
                .key_id(id)
                .pending_window_in_days(days)
                .send(),
        )
        .map_err(|e| format!("KMS ScheduleKeyDeletion {key_arn}: {}", describe(&e)))?;
    Ok(r.deletion_date
        .map(|d| super::time(Some(&d)))
        .unwrap_or_else(|| format!("in {days} day(s)")))
}

/// Key names (ARN, key id, alias) resolved with DescribeKey, each once.
#[derive(Default)]
pub struct Names(HashMap<String, Option<KeyInfo>>);

impl Names {
    /// The key `raw` names, or `None` when KMS knows no such key.
    pub fn resolve(&mut self, s3: &S3, raw: &str) -> Result<Option<KeyInfo>, String> {
        if let Some(k) = self.0.get(raw) {
            return Ok(k.clone());
        }
        let k = describe_key(s3, raw)?;
        self.0.insert(raw.to_string(), k.clone());
        Ok(k)
    }
}

/// Who else may read data under a key: what [`judge`] weighs.
pub struct Use {
    /// Object versions of the bucket, outside the plan, under the key.
    pub outside: u64,
    /// Planned versions under retention or a legal hold.
    pub held: u64,
    pub grants: u64,
    pub bucket_default: bool,
    pub aliases: Vec<String>,
}

/// Why decom must not destroy `key`, or `None` when it is dedicated to the
/// plan: customer-managed (and not named `alias/aws/…`, a prefix AWS
/// reserves for its own keys), not already pending deletion, single-Region,
/// used by no other version of the bucket, holding no planned version under
/// retention or legal hold, not the bucket's default key, with no grant.
/// Trace proposes only such keys; execute asks again right before it
/// schedules the deletion.
pub fn judge(key: &KeyInfo, u: &Use, bucket: &str) -> Option<String> {
    let aws_managed =
        key.manager != "CUSTOMER" || u.aliases.iter().any(|a| a.starts_with("alias/aws/"));
    if aws_managed {
        Some(format!(
            "an AWS-managed key ({}): shared by everything in the account that uses it; only a customer-managed key can be destroyed for one model",
            u.aliases.first().map(String::as_str).unwrap_or("aws/s3")
        ))
    } else if key.state == "PendingDeletion" {
        Some("already pending deletion, scheduled outside this plan".to_string())
    } else if key.multi_region {
        Some(
            "a multi-Region key: its replicas in other Regions are keys decom does not see"
                .to_string(),
        )
    } else if u.outside > 0 {
        Some(format!(
            "encrypts {} object version(s) in s3://{bucket} outside the plan",
            u.outside
        ))
    } else if u.held > 0 {
        Some(format!(
            "encrypts {} planned version(s) under retention or a legal hold: destroying it would defeat the hold",
            u.held
        ))
    } else if u.bucket_default {
        Some(format!(
            "the default encryption key of s3://{bucket}: new objects are written under it"
        ))
    } else if u.grants > 0 {
        Some(format!("{} grant(s) let other principals use it", u.grants))
    } else {
        None
    }
}

/// The bucket's default SSE-KMS key, resolved to its ARN.
pub fn bucket_default(s3: &S3, bucket: &str, names: &mut Names) -> Result<Option<String>, String> {
    let raw = match s3.block_on(s3.client().get_bucket_encryption().bucket(bucket).send()) {
        Ok(o) => o
            .server_side_encryption_configuration
            .map(|c| c.rules)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.apply_server_side_encryption_by_default)
            .find_map(|d| d.kms_master_key_id),
        Err(e)
            if not_implemented(&e)
                || e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") =>
        {
            None
        }
        Err(e) => return Err(format!("GetBucketEncryption: {}", describe(&e))),
    };
    Ok(match raw {
        Some(k) => names.resolve(s3, &k)?.map(|i| i.arn),
        None => None,
    })
}

/// Every KMS key that encrypts a version of `bucket` that `count` lets
/// through, by ARN, with how many such versions it encrypts: the bucket is
/// listed (the one pagination loop, [`S3::list_versions`]) and each version
/// HEADed (with bounded concurrency) for its key.
pub fn keys_in_bucket(
    s3: &S3,
    bucket: &str,
    count: impl Fn(&Listed) -> bool,
    names: &mut Names,
) -> Result<HashMap<String, u64>, String> {
    let mut versions: Vec<Listed> = Vec::new();
    s3.list_versions(bucket, &Scope::new(""), |l| {
        if !l.is_marker && count(&l) {
            versions.push(l);
        }
    })
    .map_err(|e| e.to_string())?;
    let heads = s3.bounded(versions, |l| async move {
        let version = super::head_version_id(&l.version_id, l.is_latest);
        s3.client()
            .head_object()
            .bucket(bucket)
            .key(&l.key)
            .set_version_id(version)
            .send()
            .await
            .map(|h| h.ssekms_key_id)
            .map_err(|e| format!("HEAD s3://{bucket}/{}: {}", l.key, describe(&e)))
    });
    let mut used: HashMap<String, u64> = HashMap::new();
    for h in heads {
        if let Some(raw) = h?
            && let Some(info) = names.resolve(s3, &raw)?
        {
            *used.entry(info.arn).or_default() += 1;
        }
    }
    Ok(used)
}
