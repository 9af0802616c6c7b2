//! What a plan records of an MLflow registry entry: the model version,
//! the aliases that point at it, its runs and (optionally) the registered
//! model; the bytes they point to are ordinary locations of the plan.

use serde::{Deserialize, Serialize};

/// The registry entry as trace found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowLocation {
    pub tracking_uri: String,
    pub name: String,
    pub version: String,
    /// The alias the manifest named, resolved to `version` at trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The registered model's other versions: they stay.
    pub other_versions: Vec<String>,
    /// What another version also uses, kept (or, with `dispose_shared`,
    /// disposed of anyway): one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// Whether deleted runs are purged (`backend_store_uri` given).
    pub purge_runs: bool,
}

/// The model version: deleted once its source and run are still the
/// approved ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowVersion {
    pub name: String,
    pub version: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// MLflow 3: the logged model the version was registered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub status: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its tags, `key=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// An alias pointing at the version: deleted first, so nothing new loads
/// the model once disposal began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowAlias {
    pub name: String,
    pub alias: String,
    pub version: String,
}

/// A run that logged the model: deleted after its artifacts, then purged
/// with `mlflow gc` where the backend store is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowRun {
    pub run_id: String,
    pub experiment_id: String,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    /// Datasets logged as its inputs: `name (digest) from source`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// MLflow 3 logged models of the version that the run logged: deleted
    /// and purged with it (their artifact locations are plan locations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logged_models: Vec<String>,
    /// Every logged model among its outputs at trace: one it logged since
    /// approval makes it changed (skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<String>,
}

/// The registered model itself, when the manifest says so and it has no
/// other version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowModel {
    pub name: String,
}
