//! What the manifest and the plan record of an MLflow registry entry, with
//! no client: the `[model.mlflow]` table and the `mlflow:` location URI.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The manifest's `[model.mlflow]`: which registered model version to
/// retire, and where its registry and artifacts live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The tracking server (`http://mlflow.internal:5000`).
    pub tracking_uri: String,
    /// The registered model's name.
    pub name: String,
    /// The version to retire; or `alias`, resolved at trace and recorded
    /// as the version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The tracking server's backend store (`sqlite:///…`,
    /// `postgresql://…`): with it, deleted runs are purged for good with
    /// `mlflow gc`; without it they stay deleted, not purged (pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_store_uri: Option<String>,
    /// Where the server keeps proxied artifacts (its
    /// `--artifacts-destination`): `mlflow-artifacts:/` URIs resolve there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_destination: Option<String>,
    /// Also delete the registered model once it has no other version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_registered_model: bool,
    /// The `mlflow` command that runs `mlflow gc` (default: `mlflow` on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_command: Option<String>,
    /// Runs and artifacts another version also uses: kept (default) or
    /// disposed of anyway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dispose_shared: bool,
}

impl Registry {
    /// What can be checked before the registry is asked anything.
    pub fn check(&self) -> std::result::Result<(), String> {
        tracking_uri(&self.tracking_uri).map_err(|e| e.to_string())?;
        if self.name.trim().is_empty() || self.name.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "[model.mlflow] name {:?} is not a model name",
                self.name
            ));
        }
        match (&self.version, &self.alias) {
            (Some(v), None) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {}
            (Some(v), None) => {
                return Err(format!(
                    "[model.mlflow] version {v:?} is not a version number"
                ));
            }
            (None, Some(a)) if !a.is_empty() && !a.contains(['/', '\n', '\0']) => {}
            (None, Some(a)) => return Err(format!("[model.mlflow] alias {a:?} is not an alias")),
            (Some(_), Some(_)) => {
                return Err("[model.mlflow] names a version and an alias: give one".into());
            }
            (None, None) => {
                return Err("[model.mlflow] needs the version (or alias) to retire".into());
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port][/path]` with no query, fragment or user.
pub fn tracking_uri(uri: &str) -> Result<String> {
    let bad = |why: &str| Error::input(format!("[model.mlflow] tracking_uri {uri:?}: {why}"));
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| bad("not an http:// or https:// URL of a tracking server"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || host.contains('@')
        || rest.contains(['?', '#'])
        || rest.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(bad(
            "name a host, port and path only (http://127.0.0.1:5000)",
        ));
    }
    Ok(uri.trim_end_matches('/').to_string())
}

/// The plan location of a registry entry: `mlflow:NAME/VERSION`.
pub fn location_uri(name: &str, version: &str) -> String {
    format!("mlflow:{name}/{version}")
}

/// Parse `mlflow:NAME/VERSION`.
pub fn parse_uri(uri: &str) -> Result<(String, String)> {
    let bad = || {
        Error::input(format!(
            "location {uri:?}: not an mlflow:NAME/VERSION location"
        ))
    };
    let rest = uri.strip_prefix("mlflow:").ok_or_else(bad)?;
    let (name, version) = rest.rsplit_once('/').ok_or_else(bad)?;
    if name.is_empty() || version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok((name.to_string(), version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(version: Option<&str>, alias: Option<&str>) -> Registry {
        Registry {
            tracking_uri: "http://127.0.0.1:5000".into(),
            name: "fraud-detector".into(),
            version: version.map(str::to_string),
            alias: alias.map(str::to_string),
            backend_store_uri: None,
            artifacts_destination: None,
            delete_registered_model: false,
            mlflow_command: None,
            dispose_shared: false,
        }
    }

    #[test]
    fn a_registry_names_one_version_or_one_alias() {
        assert!(reg(Some("2"), None).check().is_ok());
        assert!(reg(None, Some("champion")).check().is_ok());
        assert!(reg(None, None).check().is_err());
        assert!(reg(Some("2"), Some("champion")).check().is_err());
        assert!(reg(Some("two"), None).check().is_err());
        let mut r = reg(Some("2"), None);
        r.tracking_uri = "file:///tmp/mlruns".into();
        assert!(r.check().is_err());
        r.tracking_uri = "http://u:p@h:5000".into();
        assert!(r.check().is_err());
    }

    #[test]
    fn locations_name_the_model_and_version() {
        assert_eq!(
            location_uri("fraud-detector", "2"),
            "mlflow:fraud-detector/2"
        );
        assert_eq!(
            parse_uri("mlflow:org/fraud-detector/2").unwrap(),
            ("org/fraud-detector".into(), "2".into())
        );
        assert!(parse_uri("mlflow:fraud-detector").is_err());
        assert!(parse_uri("mlflow:/2").is_err());
    }
}
