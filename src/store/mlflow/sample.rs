//! The demo's sample registry entry, made through the same REST client as
//! every other request decom sends (`decom demo --mlflow-uri`).

use super::Mlflow;
use crate::error::{Error, IoContext, Result};
use serde_json::json;

/// On the tracking server at `tracking_uri`, a new registered model with
/// two versions, each from a run of its own whose folder holds the model's
/// files (registered from that folder, as every version before MLflow 3
/// was), and the alias `champion` on version 2. The runs' folders must be
/// on this machine (a server with a local `--default-artifact-root`): the
/// demo writes the files there itself. The registered model's name.
pub fn fill_sample_registry(tracking_uri: &str, weights: &[u8]) -> Result<String> {
    let m = Mlflow::connect(tracking_uri)?;
    let name = format!("decom-demo-{}", crate::util::random_hex(4));
    let exp = m.post("experiments/create", json!({ "name": name }))?;
    let exp = exp["experiment_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    m.post("registered-models/create", json!({ "name": name }))?;
    let small = &weights[..weights.len().min(1 << 20)];
    for k in 1..=2 {
        let run = m.post(
            "runs/create",
            json!({ "experiment_id": exp, "run_name": format!("train-v{k}") }),
        )?;
        let info = &run["run"]["info"];
        let id = info["run_id"].as_str().unwrap_or_default().to_string();
        let uri = info["artifact_uri"].as_str().unwrap_or_default();
        let folder = std::path::PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
        if !folder.is_absolute() {
            return Err(Error::input(format!(
                "MLflow at {}: the run's artifact location is {uri}; the demo writes the model's files there itself and needs a local artifact root (mlflow server --default-artifact-root DIR --no-serve-artifacts on this machine)",
                m.base
            )));
        }
        let model = folder.join("model");
        std::fs::create_dir_all(&model).at(&model)?;
        let mut body = small.to_vec();
        body.rotate_left(k);
        for (file, bytes) in [
            ("model.safetensors", body.as_slice()),
            ("config.json", br#"{"architectures": ["FraudDetector"]}"#),
        ] {
            let path = model.join(file);
            std::fs::write(&path, bytes).at(&path)?;
        }
        m.post("runs/update", json!({ "run_id": id, "status": "FINISHED" }))?;
        m.post(
            "model-versions/create",
            json!({ "name": name, "source": model.display().to_string(), "run_id": id }),
        )?;
    }
    m.post(
        "registered-models/alias",
        json!({ "name": name, "alias": "champion", "version": "2" }),
    )?;
    Ok(name)
}
