//! Tracing a model version from its registry entry: resolve the alias,
//! read the version, its run and (MLflow 3) its logged model, the other
//! versions of the registered model, and turn every artifact URI into an
//! ordinary location of the plan, unless another version uses it too.

use super::client::{Found, Mlflow, ModelVersion, Run};
use super::spec::{Registry, location_uri};
use crate::error::{Error, Result};
use crate::manifest::{Location, MatchMode, Method, Shared};
use crate::plan::{
    Item, MlflowAlias, MlflowLocation, MlflowModel, MlflowRun, MlflowVersion, Risk, RiskKind,
};

/// What trace learnt of the registry entry.
pub struct Entry {
    pub location: MlflowLocation,
    pub items: Vec<Item>,
    pub risks: Vec<Risk>,
    /// The artifact locations it points to, as manifest locations.
    pub locations: Vec<Location>,
}

/// A location trace adds, found through the registry.
fn derived(uri: String, why: String) -> Location {
    Location {
        uri,
        match_mode: MatchMode::All,
        include: Vec::new(),
        exclude: Vec::new(),
        cross_filesystems: false,
        shared: Shared::default(),
        method: Method::default(),
        crypto_erase: false,
        crypto_erase_days: None,
        allow_system: false,
        allow_open_files: false,
        found_by: Some(why),
    }
}

/// An artifact URI as a location URI decom traces: `file:` and plain paths
/// as paths, `s3://` and `gs://` as they are, `mlflow-artifacts:/` under
/// the server's artifacts destination. `Err`: a scheme decom cannot reach.
pub fn storage_uri(uri: &str, destination: Option<&str>) -> std::result::Result<String, String> {
    if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
        // mlflow-artifacts:/path or mlflow-artifacts://host/path
        let path = match rest.strip_prefix("//") {
            Some(r) => r.split_once('/').map(|(_, p)| p).unwrap_or(""),
            None => rest.trim_start_matches('/'),
        };
        let Some(dest) = destination else {
            return Err(format!(
                "{uri} is proxied by the tracking server: give [model.mlflow] artifacts_destination (the server's --artifacts-destination) to reach its bytes"
            ));
        };
        if path.trim_matches('/').is_empty() || path.split('/').any(|c| c == "..") {
            return Err(format!(
                "{uri} names the whole artifacts destination (or climbs out of it): not planned"
            ));
        }
        return Ok(format!("{}/{path}", dest.trim_end_matches('/')));
    }
    if let Some(rest) = uri.strip_prefix("file://") {
        return Ok(rest.to_string());
    }
    for scheme in ["s3://", "gs://"] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            return match rest.split_once('/') {
                Some((_, p)) if !p.trim_matches('/').is_empty() => Ok(uri.to_string()),
                _ => Err(format!("{uri} names a whole bucket: not planned")),
            };
        }
    }
    if uri.starts_with('/') {
        return Ok(uri.to_string());
    }
    Err(format!("{uri}: decom cannot reach this artifact store"))
}

/// Resolve and read the registry entry the manifest names.
pub fn entry(m: &Mlflow, reg: &Registry) -> Result<Entry> {
    let version = match (&reg.version, &reg.alias) {
        (Some(v), _) => v.clone(),
        (None, Some(a)) => match m.version_by_alias(&reg.name, a)? {
            Found::Yes(v) => v.version,
            Found::No => {
                return Err(Error::input(format!(
                    "MLflow at {}: model {:?} has no alias {a:?}",
                    m.base, reg.name
                )));
            }
        },
        (None, None) => return Err(Error::input("[model.mlflow] names no version")),
    };
    let Found::Yes(v) = m.model_version(&reg.name, &version)? else {
        return Err(Error::input(format!(
            "MLflow at {}: model {:?} has no version {version}",
            m.base, reg.name
        )));
    };
    let others: Vec<ModelVersion> = m
        .versions_of(&reg.name)?
        .into_iter()
        .filter(|o| o.version != version)
        .collect();
    let run = match &v.run_id {
        Some(id) if !id.is_empty() => match m.run(id)? {
            Found::Yes(r) => Some(r),
            Found::No => None,
        },
        _ => None,
    };
    // MLflow 3 registers a logged model: its id is in the source
    // (`models:/m-…`); the REST answer carries no model_id field.
    let mut v = v;
    v.model_id = model_id_of(&v);
    let logged = match &v.model_id {
        Some(id) if !id.is_empty() => m.logged_model_location(id)?,
        _ => None,
    };
    // Versions of other registered models made from the same run share it.
    let mut sharing = others.clone();
    if let Some(id) = v.run_id.as_deref().filter(|id| !id.is_empty()) {
        sharing.extend(
            m.versions_with_run(id)?
                .into_iter()
                .filter(|o| o.name != reg.name),
        );
    }
    Ok(assemble(reg, v, (others, sharing), run, logged))
}

/// The plan's view of the entry: items, locations, and what is shared.
fn assemble(
    reg: &Registry,
    v: ModelVersion,
    (others, sharing): (Vec<ModelVersion>, Vec<ModelVersion>),
    run: Option<Run>,
    logged: Option<String>,
) -> Entry {
    let mut risks = Vec::new();
    let mut items: Vec<Item> = v
        .aliases
        .iter()
        .map(|a| {
            Item::MlflowAlias(MlflowAlias {
                name: v.name.clone(),
                alias: a.clone(),
                version: v.version.clone(),
            })
        })
        .collect();
    let run_shared = sharing
        .iter()
        .any(|o| o.run_id.is_some() && o.run_id == v.run_id);
    let (mut locations, mut shared) = (Vec::new(), Vec::new());
    // Whether the run's folder and the logged model's folder became plan
    // locations: mlflow gc deletes both, so the run is purged only then.
    let (mut run_planned, mut logged_planned) = (false, false);
    for (uri, why, users) in artifact_uris(&v, &sharing, run.as_ref(), logged.as_deref()) {
        if !users.is_empty() {
            let line = format!("{uri} ({why}) is also used by {}", users.join(", "));
            risks.push(shared_risk(reg, &uri, &line));
            shared.push(line);
            if !reg.dispose_shared {
                continue;
            }
        }
        if locations
            .iter()
            .any(|l: &Location| uri_covers(&l.uri, &uri))
        {
            continue;
        }
        match storage_uri(&uri, reg.artifacts_destination.as_deref()) {
            Ok(u) => {
                run_planned |= why.starts_with("artifacts of run");
                logged_planned |= why.starts_with("logged model");
                locations.push(derived(u, format!("MLflow: {why}")))
            }
            Err(why) => risks.push(Risk {
                kind: RiskKind::StoreOutsideLocation,
                subject: uri.clone(),
                detail: why,
            }),
        }
    }
    items.push(Item::MlflowVersion(MlflowVersion {
        name: v.name.clone(),
        version: v.version.clone(),
        source: v.source.clone(),
        run_id: v.run_id.clone(),
        model_id: v.model_id.clone(),
        status: v.status.clone(),
        created: v
            .creation_timestamp
            .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
            .map(crate::util::rfc3339)
            .unwrap_or_default(),
        aliases: v.aliases.clone(),
        tags: v
            .tags
            .iter()
            .map(|t| format!("{}={}", t.key, t.value))
            .collect(),
    }));
    if let Some(r) = run
        && (!run_shared || reg.dispose_shared)
        && run_planned
        && (logged.is_none() || logged_planned)
    {
        let (item, risk) = run_item(r, v.model_id.as_deref());
        items.push(item);
        risks.extend(risk);
    }
    if reg.delete_registered_model && others.is_empty() {
        items.push(Item::MlflowModel(MlflowModel {
            name: v.name.clone(),
        }));
    }
    if reg.backend_store_uri.is_none() {
        risks.push(Risk {
            kind: RiskKind::MlflowRunsNotPurged,
            subject: location_uri(&v.name, &v.version),
            detail: "no [model.mlflow] backend_store_uri: the runs are deleted, not purged; they stay in the tracking server's backend store (restorable) until `mlflow gc` runs against it, and the certificate stays pending".into(),
        });
    }
    locations.insert(
        0,
        derived(location_uri(&v.name, &v.version), "[model.mlflow]".into()),
    );
    Entry {
        location: MlflowLocation {
            tracking_uri: reg.tracking_uri.clone(),
            name: v.name.clone(),
            version: v.version.clone(),
            alias: reg.alias.clone(),
            other_versions: others.iter().map(|o| o.version.clone()).collect(),
            shared,
            purge_runs: reg.backend_store_uri.is_some(),
        },
        items,
        risks,
        locations,
    }
}

/// The version's artifact URIs (the run's, the logged model's, a path
/// source), each with why it is there and the other versions that use it
/// too (the same run, the same logged model, or a source under it).
fn artifact_uris(
    v: &ModelVersion,
    others: &[ModelVersion],
    run: Option<&Run>,
    logged: Option<&str>,
) -> Vec<(String, String, Vec<String>)> {
    let label = format!("{} version {}", v.name, v.version);
    let same_run = |o: &ModelVersion| o.run_id.is_some() && o.run_id == v.run_id;
    let same_model = |o: &ModelVersion| v.model_id.is_some() && model_id_of(o) == v.model_id;
    let mut uris: Vec<(String, String, Src)> = Vec::new();
    if let Some(r) = run {
        uris.push((
            r.artifact_uri.clone(),
            format!("artifacts of run {} ({label})", r.run_id),
            Src::Run,
        ));
    }
    if let Some(l) = logged {
        uris.push((
            l.to_string(),
            format!(
                "logged model {} ({label})",
                v.model_id.as_deref().unwrap_or("?")
            ),
            Src::Logged,
        ));
    }
    if !v.source.starts_with("runs:/") && !v.source.starts_with("models:/") {
        uris.push((v.source.clone(), format!("source of {label}"), Src::Path));
    }
    uris.into_iter()
        .map(|(uri, why, src)| {
            let users = others
                .iter()
                .filter(|o| {
                    o.source == uri
                        || o.source.starts_with(&format!("{uri}/"))
                        || (src == Src::Run && same_run(o))
                        || (src == Src::Logged && same_model(o))
                })
                .map(|o| match o.name == v.name {
                    true => format!("version {}", o.version),
                    false => format!("{} version {}", o.name, o.version),
                })
                .collect();
            (uri, why, users)
        })
        .collect()
}

fn shared_risk(reg: &Registry, uri: &str, line: &str) -> Risk {
    Risk {
        kind: match reg.dispose_shared {
            false => RiskKind::SharedContent,
            true => RiskKind::SharedContentDisposed,
        },
        subject: uri.to_string(),
        detail: match reg.dispose_shared {
            false => format!("{line}: kept, with its run"),
            true => format!("{line}: disposed of anyway (dispose_shared)"),
        },
    }
}

/// A run the plan disposes of, with the risk naming its dataset inputs.
fn run_item(r: Run, model_id: Option<&str>) -> (Item, Option<Risk>) {
    let risk = (!r.datasets.is_empty()).then(|| Risk {
        kind: RiskKind::StoreOutsideLocation,
        subject: format!("mlflow:runs/{}", r.run_id),
        detail: format!(
            "the run logged these datasets as inputs; their sources are not disposed of by this plan unless a location names them: {}",
            r.datasets.join("; ")
        ),
    });
    let item = Item::MlflowRun(MlflowRun {
        run_id: r.run_id,
        experiment_id: r.experiment_id,
        artifact_uri: r.artifact_uri,
        lifecycle_stage: r.lifecycle_stage,
        datasets: r.datasets,
        logged_models: model_id.into_iter().map(str::to_string).collect(),
    });
    (item, risk)
}

/// Where an artifact URI came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Run,
    Logged,
    Path,
}

/// MLflow 3: the logged model a version was registered from, from its
/// source (`models:/m-…`; the REST answer carries no model_id field).
fn model_id_of(v: &ModelVersion) -> Option<String> {
    v.model_id.clone().or_else(|| {
        v.source
            .strip_prefix("models:/")
            .filter(|id| id.starts_with("m-") && !id.contains('/'))
            .map(str::to_string)
    })
}

/// Whether location `a` already covers URI `b` (the same, or a folder of it).
fn uri_covers(a: &str, b: &str) -> bool {
    b == a || b.starts_with(&format!("{}/", a.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_become_locations_decom_can_trace() {
        assert_eq!(
            storage_uri("file:///srv/a/1/r/artifacts", None).unwrap(),
            "/srv/a/1/r/artifacts"
        );
        assert_eq!(
            storage_uri("s3://b/1/r/artifacts", None).unwrap(),
            "s3://b/1/r/artifacts"
        );
        assert_eq!(
            storage_uri("mlflow-artifacts:/1/r/artifacts", Some("s3://b/proxied/")).unwrap(),
            "s3://b/proxied/1/r/artifacts"
        );
        assert_eq!(
            storage_uri("mlflow-artifacts://host:5000/1/r/artifacts", Some("/srv/p")).unwrap(),
            "/srv/p/1/r/artifacts"
        );
        assert!(storage_uri("mlflow-artifacts:/1/r", None).is_err());
        // Never a whole destination or bucket, never out of the destination.
        assert!(storage_uri("mlflow-artifacts:/", Some("/srv/p")).is_err());
        assert!(storage_uri("mlflow-artifacts://host:5000", Some("/srv/p")).is_err());
        assert!(storage_uri("mlflow-artifacts:/../etc", Some("/srv/p")).is_err());
        assert!(storage_uri("s3://bucket", None).is_err());
        assert!(storage_uri("gs://bucket/", None).is_err());
        assert!(storage_uri("wasbs://c@a.blob.core.windows.net/x", None).is_err());
    }
}
