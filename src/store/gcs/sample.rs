//! The demo's sample bucket, made through the GCS client like every other
//! request decom sends (`decom demo --gcs-endpoint`).

use super::spec::{Endpoint, Settings};
use crate::error::Result;

/// Make a new versioned bucket (soft delete off) on `endpoint` holding
/// three generations of the weights and a config; its name.
pub fn fill_sample_bucket(endpoint: &str, weights: &[u8]) -> Result<String> {
    let endpoint = Endpoint::of(endpoint, "--gcs-endpoint")?;
    let gcs = super::Gcs::connect_exact(&endpoint, Settings::default().concurrency()?)?;
    let bucket = format!("decom-demo-{}", crate::util::random_hex(4));
    gcs.create_bucket(
        "decom-demo",
        &format!(
            "{{\"name\":\"{bucket}\",\"versioning\":{{\"enabled\":true}},\"softDeletePolicy\":{{\"retentionDurationSeconds\":\"0\"}}}}"
        ),
    )?;
    let small = &weights[..weights.len().min(1 << 20)];
    let mut other = small.to_vec();
    other.reverse();
    for (name, body) in [
        ("model/model.safetensors", small.to_vec()),
        ("model/model.safetensors", other),
        ("model/model.safetensors", small.to_vec()),
        ("model/config.json", b"{}".to_vec()),
    ] {
        gcs.upload(&bucket, name, body)?;
    }
    Ok(bucket)
}
