//! A bucket's lifecycle configuration and MFA-delete state: read, and
//! written back whole (S3 has no call that adds or removes one rule). The
//! rules are the SDK's own values, so rules decom did not write travel back
//! exactly as the store returned them.

use super::{S3, describe};
use crate::error::{Error, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketLifecycleConfiguration, LifecycleRule, MfaDeleteStatus};

/// Every lifecycle rule of the bucket (none when it has no configuration).
pub fn rules(s3: &S3, bucket: &str) -> Result<Vec<LifecycleRule>> {
    match s3.block_on(
        s3.client()
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send(),
    ) {
        Ok(o) => Ok(o.rules().to_vec()),
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(Error::input(format!(
            "s3://{bucket}: GetBucketLifecycleConfiguration: {}",
            describe(&e)
        ))),
    }
}

/// Replace the bucket's lifecycle configuration with `rules` (none: delete it).
pub fn put_rules(s3: &S3, bucket: &str, rules: Vec<LifecycleRule>) -> Result<()> {
    let c = s3.client();
    let r = if rules.is_empty() {
        s3.block_on(c.delete_bucket_lifecycle().bucket(bucket).send())
            .map(|_| ())
            .map_err(|e| describe(&e))
    } else {
        let cfg = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| Error::input(format!("s3://{bucket}: lifecycle rules: {e}")))?;
        s3.block_on(
            c.put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(cfg)
                .send(),
        )
        .map(|_| ())
        .map_err(|e| describe(&e))
    };
    r.map_err(|e| {
        Error::io(
            format!("s3://{bucket}"),
            std::io::Error::other(format!("PutBucketLifecycleConfiguration: {e}")),
        )
    })
}

/// Whether the bucket requires MFA for deletes (then decom never touches
/// its lifecycle: expiring versions would bypass that protection).
pub fn mfa_delete(s3: &S3, bucket: &str) -> Result<bool> {
    let v = s3
        .block_on(s3.client().get_bucket_versioning().bucket(bucket).send())
        .map_err(|e| {
            Error::input(format!(
                "s3://{bucket}: GetBucketVersioning: {}",
                describe(&e)
            ))
        })?;
    Ok(v.mfa_delete() == Some(&MfaDeleteStatus::Enabled))
}
