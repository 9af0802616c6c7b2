//! KMS, for cryptographic erase: what a key is and who else uses it
//! (trace), scheduling its deletion (execute), and whether it still exists
//! (resume, recheck). Same endpoint, credentials and region as S3.

use super::{S3, describe};

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
            return match e.code() {
                Some("NotFoundException") => Ok(None),
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
