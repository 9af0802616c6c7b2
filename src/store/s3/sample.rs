//! The demo's sample bucket, made through the S3 seam like every other
//! request decom sends (`decom demo --s3-endpoint`).

use crate::error::{Error, Result};
use rand::RngCore;

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

/// Make a new bucket on `endpoint` (credentials from the standard AWS
/// chain) holding three versions of the weights, a deleted
/// config (a delete marker) and an unfinished multipart upload. On a store
/// without versioning (Garage) the bucket is unversioned: the weights and
/// config are single objects and the delete leaves no marker.
pub fn fill_sample_bucket(endpoint: &str, weights: &[u8]) -> Result<String> {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let settings = super::Settings {
        endpoint_url: Some(endpoint.to_string()),
        ..Default::default()
    };
    let s3 = super::S3::connect(&settings)?;
    let c = s3.client();
    let bucket = format!("decom-demo-{}", crate::util::random_hex(4));
    let fail =
        |what: &str, e: String| Error::input(format!("demo bucket on {endpoint}: {what}: {e}"));
    s3.block_on(c.create_bucket().bucket(&bucket).send())
        .map_err(|e| fail("create", super::describe(&e)))?;
    let versioning = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build();
    match s3.block_on(
        c.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(versioning)
            .send(),
    ) {
        Ok(_) => {}
        Err(e) if super::not_implemented(&e) => {}
        Err(e) => return Err(fail("versioning", super::describe(&e))),
    }
    let small = &weights[..weights.len().min(1 << 20)];
    for (key, body) in [
        ("model/model.safetensors", small.to_vec()),
        ("model/model.safetensors", random(1 << 20)),
        ("model/model.safetensors", small.to_vec()),
        ("model/config.json", b"{}".to_vec()),
    ] {
        s3.block_on(
            c.put_object()
                .bucket(&bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send(),
        )
        .map_err(|e| fail("upload", super::describe(&e)))?;
    }
    s3.block_on(
        c.delete_object()
            .bucket(&bucket)
            .key("model/config.json")
            .send(),
    )
    .map_err(|e| fail("delete", super::describe(&e)))?;
    let up = s3
        .block_on(
            c.create_multipart_upload()
                .bucket(&bucket)
                .key("model/checkpoint.tar")
                .send(),
        )
        .map_err(|e| fail("multipart", super::describe(&e)))?;
    let id = up.upload_id().unwrap_or_default().to_string();
    s3.block_on(
        c.upload_part()
            .bucket(&bucket)
            .key("model/checkpoint.tar")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(random(5 << 20)))
            .send(),
    )
    .map_err(|e| fail("upload part", super::describe(&e)))?;
    Ok(bucket)
}
