//! The one place the MLflow REST API (2.0 endpoints) is called, over the
//! stores' shared HTTP loop. Credentials as MLflow's own clients take
//! them: `MLFLOW_TRACKING_TOKEN` (Bearer), else
//! `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (Basic).

use crate::error::{Error, Result};
use crate::store::http::{Http, Reply};
use serde::Deserialize;
use serde_json::{Value, json};

/// A connected registry client.
pub struct Mlflow {
    pub base: String,
    http: Http,
    auth: Option<String>,
}

/// A model version as the registry describes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A `key = value` tag of a model version.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tag {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A run: its artifact location, lifecycle stage, dataset inputs and
/// (MLflow 3) the logged models it logged.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub run_id: String,
    pub experiment_id: String,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub datasets: Vec<String>,
    /// The ids of the logged models among its outputs.
    pub model_outputs: Vec<String>,
}

impl Run {
    /// A run as `runs/get` and `runs/search` describe it.
    fn from_json(run: &Value) -> Run {
        let info = &run["info"];
        let s = |k: &str| info[k].as_str().unwrap_or_default().to_string();
        let datasets = run["inputs"]["dataset_inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let d = &d["dataset"];
                format!(
                    "{} (digest {}) from {}",
                    d["name"].as_str().unwrap_or("?"),
                    d["digest"].as_str().unwrap_or("?"),
                    d["source"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let mut model_outputs: Vec<String> = run["outputs"]["model_outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["model_id"].as_str().map(str::to_string))
            .collect();
        model_outputs.sort();
        model_outputs.dedup();
        Run {
            run_id: s("run_id"),
            experiment_id: s("experiment_id"),
            artifact_uri: s("artifact_uri"),
            lifecycle_stage: s("lifecycle_stage"),
            datasets,
            model_outputs,
        }
    }
}

/// MLflow 3: a logged model, as far as trace needs it.
#[derive(Debug, Clone, Default)]
pub struct LoggedModel {
    pub artifact_uri: String,
    pub experiment_id: String,
}

/// What the registry answered for something decom asked about.
pub enum Found<T> {
    Yes(T),
    /// `RESOURCE_DOES_NOT_EXIST`.
    No,
}

fn describe(status: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("error_code").is_some() => format!(
            "HTTP {status}: {} {}",
            v["error_code"].as_str().unwrap_or_default(),
            v["message"].as_str().unwrap_or_default()
        ),
        _ => format!("HTTP {status}"),
    }
}

/// RESOURCE_DOES_NOT_EXIST; or, for an alias (MLflow 3 answers an unknown
/// alias with INVALID_PARAMETER_VALUE), "Registered model alias … not found."
fn does_not_exist(r: &Reply) -> bool {
    serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| {
        let m = v["message"].as_str().unwrap_or_default();
        v["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            || (v["error_code"] == "INVALID_PARAMETER_VALUE"
                && m.starts_with("Registered model alias")
                && m.ends_with("not found."))
    })
}

/// The Authorization header MLflow's clients send: the token as Bearer,
/// else the username and password together as Basic, else none.
fn auth_header(
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
) -> Option<String> {
    match (token.filter(|t| !t.is_empty()), user, password) {
        (Some(t), _, _) => Some(format!("Bearer {t}")),
        (None, Some(u), Some(p)) => {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            Some(format!("Basic {b}"))
        }
        _ => None,
    }
}

impl Mlflow {
    /// Connect to a tracking server (nothing is asked yet).
    pub fn connect(tracking_uri: &str) -> Result<Mlflow> {
        let base = super::spec::tracking_uri(tracking_uri)?;
        let var = |k: &str| std::env::var(k).ok();
        let auth = auth_header(
            var("MLFLOW_TRACKING_TOKEN"),
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        );
        Ok(Mlflow {
            base,
            http: Http::new("MLflow")?,
            auth,
        })
    }

    /// One call; `Found::No` for RESOURCE_DOES_NOT_EXIST, an error for
    /// any other refusal.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Found<Value>> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let r = self
            .http
            .rt
            .block_on(
                self.http
                    .call((method, &url), self.auth.as_deref(), body, describe),
            )
            .map_err(|e| Error::input(format!("MLflow at {}: {e}", self.base)))?;
        if r.ok() {
            let v = match r.body.is_empty() {
                true => json!({}),
                false => serde_json::from_slice(&r.body).map_err(|e| {
                    Error::input(format!(
                        "MLflow at {}: {path}: an answer that is not JSON: {e}",
                        self.base
                    ))
                })?,
            };
            return Ok(Found::Yes(v));
        }
        if does_not_exist(&r) {
            return Ok(Found::No);
        }
        Err(Error::input(format!(
            "MLflow at {}: {path}: {}",
            self.base,
            describe(r.status, &r.text())
        )))
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Found<Value>> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::util::percent_encode(v)))
            .collect();
        self.call(
            reqwest::Method::GET,
            &format!("{path}?{}", q.join("&")),
            None,
        )
    }

    fn version_of(v: Value, key: &str) -> Result<ModelVersion> {
        serde_json::from_value(v[key].clone())
            .map_err(|e| Error::input(format!("MLflow: a model version that cannot be read: {e}")))
    }

    pub fn model_version(&self, name: &str, version: &str) -> Result<Found<ModelVersion>> {
        match self.get(
            "model-versions/get",
            &[("name", name), ("version", version)],
        )? {
            Found::Yes(v) => Ok(Found::Yes(Self::version_of(v, "model_version")?)),
            Found::No => Ok(Found::No),
        }
    }

    pub fn version_by_alias(&self, name: &str, alias: &str) -> Result<Found<ModelVersion>> {
        match self.get(
            "registered-models/alias",
            &[("name", name), ("alias", alias)],
        )? {
            Found::Yes(v) => Ok(Found::Yes(Self::version_of(v, "model_version")?)),
            Found::No => Ok(Found::No),
        }
    }

    /// Every version of a registered model.
    pub fn versions_of(&self, name: &str) -> Result<Vec<ModelVersion>> {
        self.search(&format!("name='{}'", name.replace('\'', "\\'")))
    }

    /// Every version, of any registered model, registered from a run.
    pub fn versions_with_run(&self, run_id: &str) -> Result<Vec<ModelVersion>> {
        self.search(&format!("run_id='{}'", run_id.replace('\'', "")))
    }

    /// Every version, of any registered model, whose source is `uri` or
    /// under it (`source_path LIKE`, whose `_` and `%` may select more:
    /// the caller compares the sources itself).
    pub fn versions_with_source_under(&self, uri: &str) -> Result<Vec<ModelVersion>> {
        let uri = uri
            .trim_end_matches('/')
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        self.search(&format!("source_path LIKE '{uri}%'"))
    }

    /// Model versions a filter selects.
    fn search(&self, filter: &str) -> Result<Vec<ModelVersion>> {
        let mut out = Vec::new();
        self.pages(
            "model_versions",
            |token| {
                let mut q = vec![("filter", filter), ("max_results", "200")];
                if !token.is_empty() {
                    q.push(("page_token", token));
                }
                self.get("model-versions/search", &q)
            },
            |m| {
                out.push(serde_json::from_value(m).map_err(|e| {
                    Error::input(format!("MLflow: a model version that cannot be read: {e}"))
                })?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Hand `each` every item under `key` of every page of a search, page
    /// by page, `ask(token)` asking for one page (the one pagination loop
    /// of the MLflow client). A page token answered twice is an error,
    /// never the end.
    fn pages(
        &self,
        key: &str,
        mut ask: impl FnMut(&str) -> Result<Found<Value>>,
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let mut token = String::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let Found::Yes(mut v) = ask(&token)? else {
                return Ok(());
            };
            if let Some(items) = v[key].as_array_mut() {
                items.drain(..).try_for_each(&mut each)?;
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() && seen.insert(t.to_string()) => token = t.to_string(),
                Some(t) if !t.is_empty() => {
                    return Err(Error::input(format!(
                        "MLflow at {}: a search answered page token {t:?} twice",
                        self.base
                    )));
                }
                _ => return Ok(()),
            }
        }
    }

    pub fn run(&self, run_id: &str) -> Result<Found<Run>> {
        let Found::Yes(v) = self.get("runs/get", &[("run_id", run_id)])? else {
            return Ok(Found::No);
        };
        Ok(Found::Yes(Run::from_json(&v["run"])))
    }

    /// MLflow 3: every run of these experiments, active or deleted, that
    /// logged the model (has it among its outputs).
    pub fn runs_that_logged(&self, experiments: &[&str], model_id: &str) -> Result<Vec<Run>> {
        let mut out = Vec::new();
        self.pages(
            "runs",
            |token| {
                let mut body = json!({
                    "experiment_ids": experiments,
                    "run_view_type": "ALL",
                    "max_results": 1000,
                });
                if !token.is_empty() {
                    body["page_token"] = json!(token);
                }
                self.call(reqwest::Method::POST, "runs/search", Some(body))
            },
            |r| {
                let r = Run::from_json(&r);
                if r.model_outputs.iter().any(|m| m == model_id) {
                    out.push(r);
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// MLflow 3: a logged model (`None` where the server has no such
    /// model).
    pub fn logged_model(&self, model_id: &str) -> Result<Option<LoggedModel>> {
        let url = format!("logged-models/{}", crate::util::percent_encode(model_id));
        match self.call(reqwest::Method::GET, &url, None)? {
            Found::Yes(v) => {
                let info = &v["model"]["info"];
                Ok(info["artifact_uri"].as_str().map(|u| LoggedModel {
                    artifact_uri: u.to_string(),
                    experiment_id: info["experiment_id"].as_str().unwrap_or_default().into(),
                }))
            }
            Found::No => Ok(None),
        }
    }

    /// MLflow 3: create an empty logged model in an experiment (the gc
    /// sentinel: see `dispose::purge`); its id.
    pub fn create_logged_model(&self, experiment_id: &str, name: &str) -> Result<String> {
        let body = json!({
            "experiment_id": experiment_id,
            "name": name,
            "tags": [{"key": "decom.purpose", "value": "limits mlflow gc to the runs decom purges; deleted and purged by decom at once"}],
        });
        match self.call(reqwest::Method::POST, "logged-models", Some(body))? {
            Found::Yes(v) => v["model"]["info"]["model_id"]
                .as_str()
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::input(format!(
                        "MLflow at {}: creating a logged model answered no model_id",
                        self.base
                    ))
                }),
            Found::No => Err(Error::input(format!(
                "MLflow at {}: experiment {experiment_id} does not exist",
                self.base
            ))),
        }
    }

    /// Whether the registered model is gone (RESOURCE_DOES_NOT_EXIST).
    pub fn registered_model_gone(&self, name: &str) -> Result<bool> {
        Ok(matches!(
            self.get("registered-models/get", &[("name", name)])?,
            Found::No
        ))
    }

    /// MLflow 3: delete a logged model (the registry then answers 404 for
    /// it; `mlflow gc` purges its rows).
    pub fn delete_logged_model(&self, model_id: &str) -> Result<Found<()>> {
        let url = format!("logged-models/{}", crate::util::percent_encode(model_id));
        Ok(match self.call(reqwest::Method::DELETE, &url, None)? {
            Found::Yes(_) => Found::Yes(()),
            Found::No => Found::No,
        })
    }

    /// Experiments in the deleted stage: `mlflow gc` purges every one of
    /// them (and their runs) whatever ids it is given.
    pub fn deleted_experiments(&self) -> Result<Vec<String>> {
        let Found::Yes(v) = self.get(
            "experiments/search",
            &[("view_type", "DELETED_ONLY"), ("max_results", "1000")],
        )?
        else {
            return Ok(Vec::new());
        };
        Ok(v["experiments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["experiment_id"].as_str().map(str::to_string))
            .collect())
    }

    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<Found<()>> {
        self.gone(
            reqwest::Method::DELETE,
            "registered-models/alias",
            json!({"name": name, "alias": alias}),
        )
    }

    pub fn delete_version(&self, name: &str, version: &str) -> Result<Found<()>> {
        self.gone(
            reqwest::Method::DELETE,
            "model-versions/delete",
            json!({"name": name, "version": version}),
        )
    }

    pub fn delete_run(&self, run_id: &str) -> Result<Found<()>> {
        self.gone(
            reqwest::Method::POST,
            "runs/delete",
            json!({"run_id": run_id}),
        )
    }

    pub fn delete_registered_model(&self, name: &str) -> Result<Found<()>> {
        self.gone(
            reqwest::Method::DELETE,
            "registered-models/delete",
            json!({"name": name}),
        )
    }

    /// A POST that must succeed (the demo's sample entries); its answer.
    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        match self.call(reqwest::Method::POST, path, Some(body))? {
            Found::Yes(v) => Ok(v),
            Found::No => Err(Error::input(format!(
                "MLflow at {}: {path}: RESOURCE_DOES_NOT_EXIST",
                self.base
            ))),
        }
    }

    fn gone(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Found<()>> {
        Ok(match self.call(method, path, Some(body))? {
            Found::Yes(_) => Found::Yes(()),
            Found::No => Found::No,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::auth_header;

    #[test]
    fn credentials_are_sent_as_mlflows_clients_send_them() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            auth_header(s("tok"), s("u"), s("p")).as_deref(),
            Some("Bearer tok")
        );
        // "u:p" in base64.
        assert_eq!(
            auth_header(s(""), s("u"), s("p")).as_deref(),
            Some("Basic dTpw")
        );
        assert_eq!(auth_header(None, s("u"), None), None);
        assert_eq!(auth_header(None, None, None), None);
    }
}
