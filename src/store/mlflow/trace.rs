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
        Some(id) if !id.is_empty() => m.logged_model(id)?,
        _ => None,
    };
    // The runs that logged the same model (MLflow 3 links them through
    // run outputs), searched in the experiments of the model and its run.
    let mut runs: Vec<Run> = run.into_iter().collect();
    if let (Some(id), Some(l)) = (&v.model_id, &logged) {
        let mut exps = vec![l.experiment_id.clone()];
        exps.extend(runs.iter().map(|r| r.experiment_id.clone()));
        exps.retain(|e| !e.is_empty());
        exps.sort();
        exps.dedup();
        let exps: Vec<&str> = exps.iter().map(String::as_str).collect();
        let found = match exps.is_empty() {
            true => Vec::new(),
            false => m.runs_that_logged(&exps, id)?,
        };
        for r in found {
            if !runs.iter().any(|x| x.run_id == r.run_id) {
                runs.push(r);
            }
        }
    }
    // Versions of other registered models made from one of these runs, or
    // from a source at or under one of the folders (the logged model's
    // `models:/m-…` too), share it.
    let logged = logged.map(|l| l.artifact_uri);
    let mut sharing = others.clone();
    let mut sources: Vec<String> = runs.iter().map(|r| r.artifact_uri.clone()).collect();
    sources.extend(logged.clone());
    sources.extend(v.model_id.as_ref().map(|id| format!("models:/{id}")));
    for r in &runs {
        sharing.extend(m.versions_with_run(&r.run_id)?);
    }
    for uri in &sources {
        sharing.extend(m.versions_with_source_under(uri)?);
    }
    sharing.retain(|o| o.name != reg.name || others.iter().any(|x| x.version == o.version));
    sharing.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    sharing.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok(assemble(reg, v, (others, sharing), runs, logged))
}

/// The plan's view of the entry: items, locations, and what is shared.
fn assemble(
    reg: &Registry,
    v: ModelVersion,
    (others, sharing): (Vec<ModelVersion>, Vec<ModelVersion>),
    runs: Vec<Run>,
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
    let (mut locations, mut shared) = (Vec::new(), Vec::new());
    // The runs whose folder became a plan location, and whether the logged
    // model's did: mlflow gc deletes both, so a run is purged only then.
    let (mut runs_planned, mut logged_planned) = (Vec::new(), false);
    for (uri, why, src, users) in artifact_uris(&v, &sharing, &runs, logged.as_deref()) {
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
                match src {
                    Src::Run(i) => runs_planned.push(i),
                    Src::Logged => logged_planned = true,
                    Src::Path => {}
                }
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
    // A run another version uses is shared: its folder was not planned
    // (unless dispose_shared), so neither is the run.
    for (i, r) in runs.into_iter().enumerate() {
        if runs_planned.contains(&i) && (logged.is_none() || logged_planned) {
            let model = v.model_id.as_deref().filter(|_| logged_planned);
            let (item, risk) = run_item(r, model);
            items.push(item);
            risks.extend(risk);
        }
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

/// The version's artifact URIs (each run's, the logged model's, a path
/// source), each with why it is there and what else uses it too: other
/// versions (the same run, the same logged model, or a source under it)
/// and, for a run, the other logged models it logged.
fn artifact_uris(
    v: &ModelVersion,
    others: &[ModelVersion],
    runs: &[Run],
    logged: Option<&str>,
) -> Vec<(String, String, Src, Vec<String>)> {
    let label = format!("{} version {}", v.name, v.version);
    let same_model = |o: &ModelVersion| v.model_id.is_some() && model_id_of(o) == v.model_id;
    let mut uris: Vec<(String, String, Src)> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let why = match v.run_id.as_deref() == Some(r.run_id.as_str()) {
            true => format!("artifacts of run {} ({label})", r.run_id),
            false => format!(
                "artifacts of run {}, which logged the same model ({label})",
                r.run_id
            ),
        };
        uris.push((r.artifact_uri.clone(), why, Src::Run(i)));
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
            let mut users: Vec<String> = others
                .iter()
                .filter(|o| {
                    o.source == uri
                        || o.source.starts_with(&format!("{uri}/"))
                        || match src {
                            Src::Run(i) => o.run_id.as_deref() == Some(runs[i].run_id.as_str()),
                            Src::Logged => same_model(o),
                            Src::Path => false,
                        }
                })
                .map(|o| match o.name == v.name {
                    true => format!("version {}", o.version),
                    false => format!("{} version {}", o.name, o.version),
                })
                .collect();
            if let Src::Run(i) = src {
                users.extend(
                    runs[i]
                        .model_outputs
                        .iter()
                        .filter(|m| v.model_id.as_ref() != Some(*m))
                        .map(|m| format!("logged model {m}, which the run logged too")),
                );
            }
            (uri, why, src, users)
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
        model_outputs: r.model_outputs,
    });
    (item, risk)
}

/// Where an artifact URI came from: the folder of `runs[i]`, the logged
/// model's, or a path source.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Run(usize),
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

    fn registry(dispose_shared: bool) -> Registry {
        Registry {
            tracking_uri: "http://127.0.0.1:5000".into(),
            name: "fraud".into(),
            version: Some("2".into()),
            alias: None,
            backend_store_uri: Some("sqlite:///db".into()),
            artifacts_destination: None,
            delete_registered_model: false,
            mlflow_command: None,
            dispose_shared,
        }
    }

    fn version(n: &str, run: &str, model: &str) -> ModelVersion {
        ModelVersion {
            name: "fraud".into(),
            version: n.into(),
            source: format!("models:/{model}"),
            run_id: Some(run.into()),
            ..Default::default()
        }
    }

    fn run(id: &str, outputs: &[&str]) -> Run {
        Run {
            run_id: id.into(),
            experiment_id: "1".into(),
            artifact_uri: format!("/srv/mlruns/1/{id}/artifacts"),
            lifecycle_stage: "active".into(),
            model_outputs: outputs.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        }
    }

    fn planned_runs(e: &Entry) -> Vec<String> {
        e.items
            .iter()
            .filter_map(|i| match i {
                Item::MlflowRun(r) => Some(r.run_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every run that logged the model is planned with its folder, unless
    /// something else uses it: another version's run, or a run that also
    /// logged another model.
    #[test]
    fn runs_that_logged_the_same_model_are_planned_unless_shared() {
        let mut v = version("2", "r1", "m-2");
        v.model_id = model_id_of(&v);
        let others = vec![version("1", "r0", "m-1"), version("3", "r3", "m-3")];
        let runs = vec![
            run("r1", &["m-2"]),
            run("r2", &["m-2"]),
            run("r3", &["m-2", "m-3"]),
            run("r4", &["m-2", "m-9"]),
        ];
        let logged = Some("/srv/mlruns/1/models/m-2/artifacts".to_string());
        let e = assemble(
            &registry(false),
            v.clone(),
            (others.clone(), others.clone()),
            runs.clone(),
            logged.clone(),
        );
        assert_eq!(planned_runs(&e), ["r1", "r2"]);
        let uris: Vec<&str> = e.locations.iter().map(|l| l.uri.as_str()).collect();
        assert!(uris.contains(&"/srv/mlruns/1/r2/artifacts"), "{uris:?}");
        assert!(!uris.contains(&"/srv/mlruns/1/r3/artifacts"), "{uris:?}");
        let shared = &e.location.shared;
        assert!(
            shared
                .iter()
                .any(|l| l.contains("r3") && l.contains("version 3")),
            "another version's run: {shared:?}"
        );
        assert!(
            shared.iter().any(|l| l.contains("r4") && l.contains("m-9")),
            "a run that logged another model too: {shared:?}"
        );
        // Each planned run takes the logged model with it.
        assert!(e.items.iter().all(|i| match i {
            Item::MlflowRun(r) => r.logged_models == ["m-2"],
            _ => true,
        }));
        // dispose_shared plans them all, and says so.
        let e = assemble(&registry(true), v, (others.clone(), others), runs, logged);
        assert_eq!(planned_runs(&e), ["r1", "r2", "r3", "r4"]);
        assert!(
            e.risks
                .iter()
                .any(|r| r.kind == RiskKind::SharedContentDisposed)
        );
    }
}
