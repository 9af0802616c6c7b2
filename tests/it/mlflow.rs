//! Retiring a model version from a real MLflow registry (`mlflow server`
//! on SQLite, started by `scripts/mlflow.sh` with a local, an S3 (moto)
//! and a proxied artifact store), filled and judged by MLflow's own Python
//! client (tests/tools/mlflow_fill.py, mlflow_check.py). These tests never
//! skip: no server means they fail.

use crate::common::*;
use serde_json::Value;
use std::sync::OnceLock;

/// The servers' settings, by the names scripts/mlflow.sh prints.
fn servers() -> &'static std::collections::HashMap<&'static str, String> {
    static S: OnceLock<std::collections::HashMap<&'static str, String>> = OnceLock::new();
    S.get_or_init(|| {
        let keys = [
            "DECOM_TEST_MLFLOW_LOCAL_URI",
            "DECOM_TEST_MLFLOW_LOCAL_DB",
            "DECOM_TEST_MLFLOW_S3_URI",
            "DECOM_TEST_MLFLOW_S3_DB",
            "DECOM_TEST_MLFLOW_PROXIED_URI",
            "DECOM_TEST_MLFLOW_PROXIED_DB",
            "DECOM_TEST_MLFLOW_PROXIED_ROOT",
            "DECOM_TEST_MLFLOW_PROXIED_USER",
            "DECOM_TEST_MLFLOW_PROXIED_PASSWORD",
            "DECOM_TEST_MLFLOW_BIN",
            "DECOM_TEST_MLFLOW_S3_ENDPOINT",
        ];
        let v = crate::s3::started("mlflow.sh", "mlflow server", keys);
        keys.into_iter().zip(v).collect()
    })
}

fn s(k: &str) -> String {
    servers()[format!("DECOM_TEST_MLFLOW_{k}").as_str()].clone()
}

/// A registered model of its own on one server, filled by MLflow's client.
struct Reg {
    env: Env,
    /// LOCAL, S3 or PROXIED.
    setup: &'static str,
    uri: String,
    name: String,
    fill: Value,
}

impl Reg {
    fn new(setup: &'static str, extra: &[&str]) -> Reg {
        let uri = s(&format!("{setup}_URI"));
        let name = format!("fraud-{:08x}", rand::random::<u32>());
        let mut args = vec![
            "mlflow_fill.py",
            uri.as_str(),
            "--name",
            &name,
            "--experiment",
            &name,
        ];
        args.extend_from_slice(extra);
        let out = python_tool_env(&args, &s3_env());
        Reg {
            env: Env::new(),
            setup,
            uri,
            name,
            fill: serde_json::from_str(&out).unwrap(),
        }
    }

    fn run_of(&self, version: usize) -> String {
        self.fill["versions"][version - 1]["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The manifest: `[model.mlflow]` with `keys` (TOML lines).
    fn manifest(&self, keys: &str) {
        self.env.manifest(
            "nist-clear",
            &format!(
                "[model.mlflow]\ntracking_uri = \"{}\"\nname = \"{}\"\nmlflow_command = \"{}\"\n{keys}\n",
                self.uri,
                self.name,
                s("BIN")
            ),
        );
    }

    /// The manifest with `keys`, the server's backend store (runs are
    /// purged) and, where the artifacts are in S3, its endpoint.
    fn manifest_purging(&self, keys: &str) {
        let s3 = match self.setup {
            "LOCAL" => String::new(),
            _ => format!("\n[s3]\nendpoint_url = \"{}\"", s("S3_ENDPOINT")),
        };
        self.manifest(&format!(
            "{keys}\nbackend_store_uri = \"{}\"{s3}",
            s(&format!("{}_DB", self.setup))
        ));
    }

    /// The plan's locations of one store (`s3`, `local`).
    fn locations(&self, store: &str) -> Vec<Value> {
        self.env.plan_json()["locations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["store"] == store)
            .cloned()
            .collect()
    }

    /// What MLflow's client sees now.
    fn check(&self, run: &str, versions: &[&str]) -> Value {
        let mut args = vec!["mlflow_check.py", self.uri.as_str(), &self.name, run];
        args.extend_from_slice(versions);
        serde_json::from_str(&python_tool_env(&args, &s3_env())).unwrap()
    }

    /// decom with the S3 store's credentials (moto takes any) and, for
    /// `mlflow gc`, its endpoint.
    fn decom(&self, args: &[String]) -> Run {
        Run::from(
            self.env
                .command()
                .args(args)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1")
                // mlflow gc, which decom runs, reaches the S3 artifact
                // store as the operator's environment says.
                .env("MLFLOW_S3_ENDPOINT_URL", s("S3_ENDPOINT"))
                .envs(s3_env())
                .output()
                .unwrap(),
        )
    }

    fn trace(&self) -> Run {
        self.decom(&["trace", "decom.toml", "-o", "plan.json", "--force"].map(String::from))
    }

    fn execute(&self) -> Run {
        self.decom(&self.env.execute_args())
    }

    /// `execute --resume`, after the certificate of the run before it is
    /// moved out of the way.
    fn resume(&self) -> Run {
        std::fs::remove_file(self.env.cert()).unwrap();
        std::fs::remove_file(self.env.path("certificate.json.operator.sig")).unwrap();
        let mut args = self.env.execute_args();
        args.push("--resume".into());
        self.decom(&args)
    }

    fn outcomes(&self) -> Vec<(String, String, String)> {
        self.env.outcomes("kind")
    }
}

/// Every object version and delete marker left under a plan's S3 location
/// (moto, counted by boto3).
fn s3_versions_left(l: &Value) -> String {
    let (bucket, prefix) = (l["bucket"].as_str().unwrap(), l["prefix"].as_str().unwrap());
    python_tool_env(
        &["mlflow_s3_left.py", &s("S3_ENDPOINT"), bucket, prefix],
        &s3_env(),
    )
    .trim()
    .to_string()
}

/// Credentials and endpoint of the S3 artifact store, and the account of
/// the proxied server (MLflow's basic-auth app; the others ignore it), for
/// MLflow's client and for decom.
fn s3_env() -> Vec<(&'static str, String)> {
    vec![
        ("MLFLOW_TRACKING_USERNAME", s("PROXIED_USER")),
        ("MLFLOW_TRACKING_PASSWORD", s("PROXIED_PASSWORD")),
        ("MLFLOW_S3_ENDPOINT_URL", s("S3_ENDPOINT")),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0".into()),
    ]
}

#[test]
fn version_2_is_retired_and_versions_1_and_3_still_load() {
    let r = Reg::new("LOCAL", &[]);
    r.manifest_purging("alias = \"champion\"");
    r.trace().ok();
    let plan = r.env.plan_json();
    let loc = &plan["locations"][0];
    assert_eq!(loc["store"], "mlflow");
    assert_eq!(
        loc["version"], "2",
        "the alias is resolved and recorded as the version"
    );
    assert_eq!(loc["other_versions"].as_array().unwrap().len(), 2);
    let run2 = r.run_of(2);
    let roots: Vec<String> = plan["locations"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| l["uri"].as_str().unwrap().to_string())
        .collect();
    assert!(
        roots.iter().any(|u| u.contains(&run2)),
        "the run's artifacts: {roots:?}"
    );
    assert!(
        roots.iter().any(|u| u.contains("/models/m-")),
        "the logged model: {roots:?}"
    );
    let kinds: Vec<&str> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    for k in ["mlflow-alias", "mlflow-version", "mlflow-run"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    r.env.approve().ok();
    r.execute().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let seen = r.check(&run2, &["1", "2", "3"]);
    assert_eq!(seen["versions"]["2"]["exists"], false);
    for v in ["1", "3"] {
        assert_eq!(seen["versions"][v]["loads"], true, "{seen}");
    }
    assert_eq!(
        seen["run"],
        Value::Null,
        "the run is purged, not only deleted"
    );
    for root in &roots {
        assert!(!std::path::Path::new(root).exists(), "{root} is gone");
    }
    // MLflow's own garbage collector finds nothing of ours left to purge.
    let gc = std::process::Command::new(s("BIN"))
        .args(["gc", "--backend-store-uri", &s("LOCAL_DB")])
        .env("MLFLOW_TRACKING_URI", &r.uri)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&gc.stdout).to_string() + &String::from_utf8_lossy(&gc.stderr);
    assert!(gc.status.success(), "{said}");
    assert!(
        !said.contains(&run2),
        "mlflow gc found the run again: {said}"
    );
    r.env.cosign().ok();
    r.env.recheck().ok();
}

#[test]
fn on_an_s3_artifact_store_every_version_of_the_models_objects_is_gone() {
    let r = Reg::new("S3", &[]);
    r.manifest_purging("version = \"2\"");
    let run2 = r.run_of(2);
    r.trace().ok();
    let s3 = r.locations("s3");
    assert_eq!(
        s3.len(),
        2,
        "the run's folder and the logged model's: {s3:?}"
    );
    r.env.approve().ok();
    r.execute().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let seen = r.check(&run2, &["1", "3"]);
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
    assert_eq!(seen["run"], Value::Null);
    // Every version under both prefixes is gone (mlflow gc alone would
    // leave them behind delete markers).
    for l in &s3 {
        assert_eq!(s3_versions_left(l), "0", "versions left under {l}");
    }
}

#[test]
fn a_run_another_version_uses_is_kept_and_reported() {
    let r = Reg::new("LOCAL", &["--extra-version-from", "2"]);
    r.manifest_purging("version = \"2\"");
    r.trace().ok();
    let shared = r.env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(_, d)| d.contains("version 4") && d.contains("kept")),
        "{shared:?}"
    );
    let kinds: Vec<String> = r.env.plan_json()["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !kinds.contains(&"mlflow-run".to_string()),
        "the shared run stays: {kinds:?}"
    );
    r.env.approve().ok();
    r.execute().ok();
    let seen = r.check(&r.run_of(2), &["2", "4"]);
    assert_eq!(seen["versions"]["2"]["exists"], false);
    assert_eq!(seen["versions"]["4"]["loads"], true, "{seen}");
    assert_eq!(seen["run"], "active");
}

#[test]
fn an_alias_moved_and_a_run_that_logged_another_model_after_approval_are_skipped() {
    let r = Reg::new("LOCAL", &[]);
    r.manifest_purging("alias = \"champion\"");
    r.trace().ok();
    r.env.approve().ok();
    python_tool_env(
        &["mlflow_alias.py", &r.uri, &r.name, "champion", "3"],
        &s3_env(),
    );
    // The run logs another model after approval: gc would take that
    // model's run with it, so the run is changed.
    let later = python_tool_env(&["mlflow_link_model.py", &r.uri, &r.run_of(2)], &s3_env());
    r.execute().code(1);
    let out = r.outcomes();
    let alias = out.iter().find(|(k, _, _)| k == "mlflow-alias").unwrap();
    assert_eq!(alias.1, "skipped-changed");
    assert!(alias.2.contains("now points at version 3"), "{alias:?}");
    let run = out.iter().find(|(k, _, _)| k == "mlflow-run").unwrap();
    assert_eq!(run.1, "skipped-changed", "{run:?}");
    assert!(run.2.contains(later.trim()), "{run:?}");
    assert_eq!(r.check(&r.run_of(2), &[])["run"], "active");
    let seen = r.check(&r.run_of(2), &["2", "3"]);
    assert_eq!(
        seen["aliases"]["champion"], "3",
        "the moved alias stays: {seen}"
    );
    assert_eq!(seen["versions"]["3"]["loads"], true);
}

#[test]
fn proxied_artifacts_and_no_backend_store_leave_the_runs_pending_until_gc_runs() {
    let r = Reg::new("PROXIED", &[]);
    r.manifest(&format!(
        "version = \"2\"\nartifacts_destination = \"{}\"\n[s3]\nendpoint_url = \"{}\"",
        s("PROXIED_ROOT"),
        s("S3_ENDPOINT")
    ));
    r.trace().ok();
    assert!(!r.env.risks("mlflow-runs-not-purged").is_empty());
    let s3 = r.locations("s3");
    let dest = s("PROXIED_ROOT");
    assert!(
        s3.len() == 2
            && s3.iter().all(|l| format!(
                "s3://{}/{}",
                l["bucket"].as_str().unwrap(),
                l["prefix"].as_str().unwrap()
            )
            .starts_with(&dest)),
        "mlflow-artifacts:/ resolved under the S3 destination {dest}: {s3:?}"
    );
    r.env.approve().ok();
    r.execute().code(1);
    assert_eq!(r.env.cert_json()["status"], "pending");
    let out = r.outcomes();
    let run = out.iter().find(|(k, _, _)| k == "mlflow-run").unwrap();
    assert_eq!(run.1, "pending");
    assert!(
        run.2.contains("deleted, not purged") && run.2.contains("mlflow gc"),
        "{run:?}"
    );
    assert!(
        out.iter()
            .filter(|(k, _, _)| k.starts_with("s3-"))
            .all(|(_, o, _)| o == "disposed"),
        "{out:?}"
    );
    // Every object version under both prefixes is gone, not only the
    // current ones the proxy's own delete would remove.
    for l in &s3 {
        assert_eq!(s3_versions_left(l), "0", "versions left under {l}");
    }
    let seen = r.check(&r.run_of(2), &["1", "3"]);
    assert_eq!(seen["run"], "deleted");
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
    // The operator runs the command the reason names, against the
    // server's backend store; execute --resume then records the purge.
    let cmd = run.2.split('`').nth(1).unwrap();
    let mut words = cmd.split_whitespace();
    let tracking = words
        .next()
        .unwrap()
        .strip_prefix("MLFLOW_TRACKING_URI=")
        .unwrap();
    assert_eq!(words.next(), Some("mlflow"), "{cmd}");
    let args: Vec<String> = words
        .map(|w| match w {
            "<the" => s("PROXIED_DB"),
            w => w.to_string(),
        })
        .filter(|w| !matches!(w.as_str(), "server's" | "backend" | "store>"))
        .collect();
    let gc = std::process::Command::new(s("BIN"))
        .args(&args)
        .env("MLFLOW_TRACKING_URI", tracking)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .envs(s3_env())
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&gc.stderr)
    );
    r.resume().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let seen = r.check(&r.run_of(2), &["1", "3"]);
    assert_eq!(seen["run"], Value::Null, "purged: {seen}");
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
}

#[test]
fn a_run_that_logged_the_same_model_goes_with_it() {
    let r = Reg::new("LOCAL", &["--linked-run", "2"]);
    let v2 = &r.fill["versions"][1];
    let linked = v2["linked_run"].as_str().unwrap().to_string();
    let folder = v2["linked_run_artifact_uri"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new(&folder)
            .join("eval/scores.txt")
            .exists()
    );
    r.manifest_purging("version = \"2\"");
    r.trace().ok();
    let plan = r.env.plan_json();
    let runs: Vec<&str> = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "mlflow-run")
        .map(|a| a["run_id"].as_str().unwrap())
        .collect();
    assert!(
        runs.contains(&linked.as_str()) && runs.contains(&r.run_of(2).as_str()),
        "the source run and the run that logged the same model: {runs:?}"
    );
    r.env.approve().ok();
    r.execute().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    assert!(!std::path::Path::new(&folder).exists(), "{folder} is gone");
    let seen = r.check(&format!("{},{linked}", r.run_of(2)), &["1", "3"]);
    assert_eq!(seen["runs"][&linked], Value::Null, "purged: {seen}");
    assert_eq!(seen["run"], Value::Null, "purged: {seen}");
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
}

/// Runs that logged no MLflow 3 logged model (every version registered
/// before MLflow 3) are purged with gc limited by a sentinel, so that a
/// deleted logged model outside the plan stays.
#[test]
fn an_mlflow_2_version_is_purged_and_no_other_deleted_logged_model_is() {
    let r = Reg::new("S3", &["--style", "mlflow2", "--deleted-logged-model"]);
    let unrelated = r.fill["deleted_logged_model"].as_str().unwrap().to_string();
    let db = s("S3_DB");
    r.manifest_purging("version = \"2\"");
    r.trace().ok();
    let s3 = r.locations("s3");
    assert_eq!(s3.len(), 1, "the run's folder holds the model: {s3:?}");
    r.env.approve().ok();
    r.execute().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let out = r.outcomes();
    let run = out.iter().find(|(k, _, _)| k == "mlflow-run").unwrap();
    assert_eq!(run.1, "disposed", "{run:?}");
    let sentinel = run
        .2
        .split_whitespace()
        .find(|w| w.starts_with("m-"))
        .unwrap_or_else(|| panic!("the reason names the sentinel: {run:?}"))
        .trim_end_matches([',', ';', ')']);
    let row = |id: &str| python_tool_env(&["mlflow_logged_model_row.py", &db, id], &s3_env());
    assert_eq!(row(sentinel).trim(), "purged", "the sentinel went with gc");
    assert_eq!(
        row(&unrelated).trim(),
        "deleted",
        "a deleted logged model outside the plan is not purged"
    );
    let seen = r.check(&r.run_of(2), &["1", "2", "3"]);
    assert_eq!(seen["run"], Value::Null, "purged: {seen}");
    assert_eq!(seen["versions"]["2"]["exists"], false);
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
    assert_eq!(
        s3_versions_left(&s3[0]),
        "0",
        "versions left under {}",
        s3[0]
    );
}

#[test]
fn dispose_shared_disposes_of_a_shared_run_when_the_custodian_chooses() {
    let r = Reg::new("LOCAL", &["--extra-version-from", "2"]);
    r.manifest_purging("version = \"2\"\ndispose_shared = true");
    r.trace().ok();
    let disposed = r.env.risks("shared-content-disposed");
    assert!(
        disposed.iter().any(|(_, d)| d.contains("version 4")),
        "{disposed:?}"
    );
    r.env.approve().ok();
    r.execute().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let seen = r.check(&r.run_of(2), &["1", "2", "3", "4"]);
    assert_eq!(seen["versions"]["2"]["exists"], false);
    assert_eq!(seen["run"], Value::Null, "the shared run is purged: {seen}");
    // Version 4 stays in the registry, but its bytes went, as chosen.
    assert_eq!(seen["versions"]["4"]["exists"], true, "{seen}");
    assert_eq!(seen["versions"]["4"]["loads"], false, "{seen}");
    assert_eq!(seen["versions"]["1"]["loads"], true, "{seen}");
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
}

#[test]
fn bad_tracking_uris_and_unknown_models_are_one_line_errors() {
    let env = Env::new();
    let uri = s("LOCAL_URI");
    for (keys, needle) in [
        (
            "tracking_uri = \"file:///tmp/mlruns\"\nname = \"m\"\nversion = \"1\"",
            "not an http:// or https://",
        ),
        (
            "tracking_uri = \"http://127.0.0.1:1\"\nname = \"m\"\nversion = \"1\"",
            "MLflow at http://127.0.0.1:1",
        ),
        (
            &format!("tracking_uri = \"{uri}\"\nname = \"no-such-model-here\"\nversion = \"1\""),
            "has no version 1",
        ),
        (
            &format!("tracking_uri = \"{uri}\"\nname = \"no-such-model-here\"\nalias = \"x\""),
            "alias",
        ),
        (
            &format!("tracking_uri = \"{uri}\"\nname = \"m\""),
            "needs the version (or alias)",
        ),
        (
            // The basic-auth server, asked without MLFLOW_TRACKING_USERNAME.
            &format!(
                "tracking_uri = \"{}\"\nname = \"m\"\nversion = \"1\"",
                s("PROXIED_URI")
            ),
            "HTTP 401",
        ),
        (
            &format!("tracking_uri = \"{uri}\"\nname = \"m\"\nversion = \"two\""),
            "not a version number",
        ),
    ] {
        env.manifest("nist-clear", &format!("[model.mlflow]\n{keys}\n"));
        env.trace().code(2).one_line_error(needle);
        assert!(!env.plan().exists());
    }
    env.manifest("nist-clear", "[[locations]]\nuri = \"mlflow:m/1\"\n");
    env.trace()
        .code(2)
        .one_line_error("come from [model.mlflow]");
}

#[test]
fn a_registry_that_stops_answering_mid_run_fails_and_resume_finishes() {
    let r = Reg::new("LOCAL", &[]);
    let proxy = crate::faults::FaultProxy::start(&r.uri, 0);
    let mut r = r;
    r.uri = proxy.url.clone();
    r.manifest_purging("version = \"2\"");
    r.trace().ok();
    r.env.approve().ok();
    // Every request to the registry fails from here on.
    proxy.set_fail_permille(1000);
    r.execute().code(1);
    let out = r.outcomes();
    let version = out.iter().find(|(k, _, _)| k == "mlflow-version").unwrap();
    assert_eq!(version.1, "failed", "{out:?}");
    assert_eq!(r.env.cert_json()["status"], "incomplete");
    proxy.set_fail_permille(0);
    r.resume().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    let seen = r.check(&r.run_of(2), &["2", "3"]);
    assert_eq!(seen["versions"]["2"]["exists"], false);
    assert_eq!(seen["versions"]["3"]["loads"], true, "{seen}");
    assert_eq!(seen["run"], Value::Null);
}

#[test]
fn the_registered_model_goes_too_when_asked_and_it_has_no_other_version() {
    let r = Reg::new("LOCAL", &["--versions", "1"]);
    r.manifest_purging("version = \"1\"\ndelete_registered_model = true");
    r.trace().ok();
    let plan = r.env.plan_json();
    let model = plan["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "mlflow-model")
        .cloned();
    assert!(model.is_some(), "the registered model is planned: {plan}");
    r.env.approve().ok();
    r.execute().ok();
    let out = r.outcomes();
    assert!(
        out.iter()
            .any(|(k, o, _)| k == "mlflow-model" && o == "disposed"),
        "{out:?}"
    );
    let gone = python_tool_env(&["mlflow_model_gone.py", &r.uri, &r.name], &s3_env());
    assert_eq!(gone.trim(), "gone");
    r.env.cosign().ok();
    r.env.recheck().ok();
    // A model registered again under the name starts again at version 1:
    // recheck finds the registry has that version again.
    python_tool_env(
        &[
            "mlflow_fill.py",
            &r.uri,
            "--name",
            &r.name,
            "--experiment",
            &r.name,
            "--versions",
            "1",
        ],
        &s3_env(),
    );
    let again = r.env.recheck();
    assert_ne!(again.code, 0);
    assert!(
        again.stdout.contains("the registry has it again"),
        "{}",
        again.stdout
    );
}

#[test]
fn the_demo_retires_its_mlflow_version_too() {
    let bin_dir = std::path::Path::new(&s("BIN"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let d = run_demo(
        &[
            "--mlflow-uri",
            &s("LOCAL_URI"),
            "--mlflow-backend-store-uri",
            &s("LOCAL_DB"),
        ],
        // mlflow gc comes from PATH, as the demo's help says.
        |c| {
            c.env("PATH", path).env("MLFLOW_DISABLE_TELEMETRY", "true");
        },
    );
    let cert = &d.cert;
    let registry: Vec<(&str, &str)> = cert["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"].as_str().unwrap().starts_with("mlflow-"))
        .map(|a| (a["kind"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        registry,
        [
            ("mlflow-alias", "disposed"),
            ("mlflow-version", "disposed"),
            ("mlflow-run", "disposed")
        ],
        "{registry:?}"
    );
    let manifest = std::fs::read_to_string(d.dir.join("decom.toml")).unwrap();
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \"decom-demo-"))
        .map(|n| format!("decom-demo-{}", n.trim_end_matches('"')))
        .unwrap();
    let uri = s("LOCAL_URI");
    let seen: Value = serde_json::from_str(&python_tool_env(
        &["mlflow_check.py", &uri, &name, "none"],
        &s3_env(),
    ))
    .unwrap();
    assert_eq!(
        seen["listed"],
        serde_json::json!(["1"]),
        "version 1 stays: {seen}"
    );
}

/// `mlflow gc` purges every deleted experiment whatever run ids it is
/// given: while the registry has one, decom does not run it, and the run
/// stays deleted, not purged, until that is settled. (On the proxied
/// server, taking turns with the test that runs gc unscoped there:
/// .config/nextest.toml.)
#[test]
fn a_deleted_experiment_keeps_gc_from_running_until_it_is_settled() {
    let r = Reg::new("PROXIED", &[]);
    let exp = |args: &[&str]| {
        let mut a = vec!["mlflow_experiment.py", r.uri.as_str()];
        a.extend_from_slice(args);
        python_tool_env(&a, &s3_env()).trim().to_string()
    };
    let other = exp(&["delete-new", &format!("{}-elsewhere", r.name)]);
    r.manifest_purging(&format!(
        "version = \"2\"\nartifacts_destination = \"{}\"",
        s("PROXIED_ROOT")
    ));
    r.trace().ok();
    r.env.approve().ok();
    r.execute().code(1);
    let out = r.outcomes();
    let run = out.iter().find(|(k, _, _)| k == "mlflow-run").unwrap();
    assert_eq!(run.1, "pending", "{run:?}");
    assert!(
        run.2.contains(&format!("deleted experiment(s) {other}")),
        "{run:?}"
    );
    assert_eq!(exp(&["stage", &other]), "deleted", "not purged by decom");
    assert_eq!(r.check(&r.run_of(2), &[])["run"], "deleted");
    // Settled (here: restored); resume then purges the run.
    exp(&["restore", &other]);
    r.resume().ok();
    assert_eq!(r.env.cert_json()["status"], "complete");
    assert_eq!(r.check(&r.run_of(2), &[])["run"], Value::Null);
    assert_eq!(exp(&["stage", &other]), "active");
}

/// A version of another registered model whose source is a folder of
/// ours (registered by URI, with no run) makes that folder shared: kept,
/// with the runs that would take it with them, and the copy still loads.
#[test]
fn another_registered_model_registered_from_our_folder_keeps_it() {
    let r = Reg::new("S3", &["--other-model-from", "2"]);
    let copy = r.fill["other_model"]["name"].as_str().unwrap().to_string();
    let folder = r.fill["versions"][1]["logged_model_artifact_location"]
        .as_str()
        .unwrap()
        .to_string();
    r.manifest_purging("version = \"2\"");
    r.trace().ok();
    let shared = r.env.risks("shared-content");
    assert!(
        shared
            .iter()
            .any(|(s, d)| s == &folder && d.contains(&format!("{copy} version 1"))),
        "{shared:?}"
    );
    let planned: Vec<String> = r
        .locations("s3")
        .iter()
        .map(|l| {
            format!(
                "s3://{}/{}",
                l["bucket"].as_str().unwrap(),
                l["prefix"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        planned
            .iter()
            .all(|p| !folder.starts_with(p.trim_end_matches('/'))),
        "the shared folder is not planned: {planned:?}"
    );
    r.env.approve().ok();
    r.execute().ok();
    let seen = r.check(&r.run_of(2), &["2"]);
    assert_eq!(seen["versions"]["2"]["exists"], false);
    assert_eq!(
        seen["run"], "active",
        "the run stays with the folder: {seen}"
    );
    let copy_seen = python_tool_env(&["mlflow_check.py", &r.uri, &copy, "none", "1"], &s3_env());
    let copy_seen: Value = serde_json::from_str(&copy_seen).unwrap();
    assert_eq!(copy_seen["versions"]["1"]["loads"], true, "{copy_seen}");
}
