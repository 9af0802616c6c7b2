#!/usr/bin/env python3
"""Fill an MLflow tracking server the way decom's issue 33 tests need it.

    python mlflow_fill.py TRACKING_URI [--name fraud-detector] [--experiment decom-fill]
                          [--flavor pyfunc|sklearn] [--dataset-source URI]

Creates (in experiment --experiment) three runs, each logging one model
(pyfunc by default: a tiny PythonModel that adds a constant; or a
scikit-learn LogisticRegression) registered as versions 1..3 of --name
(--style mlflow2: the pyfunc model saved and logged as plain run
artifacts, each version registered from its run's folder with no MLflow 3
logged model, as every version registered before MLflow 3 is),
sets alias "champion" on version 2, logs a dataset input on version 2's run
and one plain artifact file (notes/notes.txt) in every run. --linked-run K
adds a run that logs version K's logged model as its output too (MLflow 3's
run outputs: an evaluation or a fine-tuning run that logged the same
model); --deleted-logged-model creates an unrelated logged model and
deletes it (not purged: what `mlflow gc` must not sweep); --other-model-from
K registers version K's logged model folder, by path and with no run, as
version 1 of another registered model, NAME-copy. Prints one JSON
document with everything decom traces. Needs only the tracking URI (and, for
an S3 artifact root, MLFLOW_S3_ENDPOINT_URL / AWS_* in the environment).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


class AddN(mlflow.pyfunc.PythonModel):
    """Adds n to every input value: version k adds k, so loads can be told apart."""

    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input: list[float], params=None) -> list[float]:
        return [v + self.n for v in model_input]


def log_mlflow2(k, name, client, run):
    """An MLflow 2 style version: the model's files are run artifacts and the
    version is registered from that folder; no logged model exists."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model")
        mlflow.pyfunc.save_model(path, python_model=AddN(k), pip_requirements=["mlflow"])
        mlflow.log_artifacts(path, "model")
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException:
        pass
    mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/model",
                                     run_id=run.info.run_id)
    return mv


def log_one(k, flavor, name):
    import numpy as np
    import pandas as pd

    if flavor == "sklearn":
        from sklearn.linear_model import LogisticRegression

        from mlflow import sklearn as mlflow_sklearn

        X = np.array([[0.0], [1.0], [2.0], [3.0]])
        y = np.array([0, 0, 1, 1])
        model = LogisticRegression().fit(X, y)
        info = mlflow_sklearn.log_model(
            model, name="model", registered_model_name=name,
            pip_requirements=[f"scikit-learn=={__import__('sklearn').__version__}"],
        )
    else:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=AddN(k), registered_model_name=name,
            # An explicit list skips MLflow's requirement inference (a subprocess).
            pip_requirements=["mlflow"],
            input_example=[1.0],
        )
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tracking_uri")
    ap.add_argument("--name", default="fraud-detector")
    ap.add_argument("--experiment", default="decom-fill")
    ap.add_argument("--flavor", choices=["pyfunc", "sklearn"], default="pyfunc")
    ap.add_argument("--dataset-source", default="s3://decom-data/fraud/train.csv")
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--style", choices=["mlflow3", "mlflow2"], default="mlflow3")
    ap.add_argument("--linked-run", type=int, default=None)
    ap.add_argument("--deleted-logged-model", action="store_true")
    ap.add_argument("--other-model-from", type=int, default=None)
    ap.add_argument("--extra-version-from", type=int, default=None,
                    help="register one more version from version K's logged model (same run)")
    a = ap.parse_args()
    # MLflow prints "View run ..." lines to stdout; keep stdout for the JSON alone.
    real_stdout, sys.stdout = sys.stdout, sys.stderr

    import pandas as pd

    t0 = time.time()
    mlflow.set_tracking_uri(a.tracking_uri)
    mlflow.set_registry_uri(a.tracking_uri)
    exp = mlflow.set_experiment(a.experiment)
    client = MlflowClient(a.tracking_uri, a.tracking_uri)
    out = {
        "tracking_uri": a.tracking_uri,
        "mlflow_version": mlflow.__version__,
        "experiment_id": exp.experiment_id,
        "experiment_artifact_location": exp.artifact_location,
        "name": a.name,
        "flavor": a.flavor,
        "versions": [],
    }
    for k in range(1, a.versions + 1):
        with mlflow.start_run(run_name=f"train-v{k}") as run:
            mlflow.log_param("k", k)
            mlflow.log_metric("auc", 0.9 + k / 100)
            mlflow.log_text(f"run for version {k}\n", "notes/notes.txt")
            if k == 2:
                df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 1]})
                ds = mlflow.data.from_pandas(df, source=a.dataset_source, name="fraud-train",
                                             targets="label")
                mlflow.log_input(ds, context="training")
                dataset = {"name": ds.name, "digest": ds.digest, "source": a.dataset_source}
            if a.style == "mlflow2":
                mv = log_mlflow2(k, a.name, client, run)
                info = None
            else:
                info = log_one(k, a.flavor, a.name)
                mv = info.registered_model_version
        version = str(mv) if not hasattr(mv, "version") else str(mv.version)
        run_info = client.get_run(run.info.run_id).info
        entry = {
            "version": version,
            "run_id": run.info.run_id,
            "run_artifact_uri": run_info.artifact_uri,
            "model_uri": info.model_uri if info else f"models:/{a.name}/{version}",
            "model_id": getattr(info, "model_id", None),
        }
        if k == 2:
            entry["dataset"] = dataset
        if entry["model_id"]:
            lm = client.get_logged_model(entry["model_id"])
            entry["logged_model_artifact_location"] = lm.artifact_location
        mvd = client.get_model_version(a.name, version)
        entry["source"] = mvd.source
        entry["storage_location"] = getattr(mvd, "storage_location", None)
        out["versions"].append(entry)
    if a.linked_run:
        from mlflow.entities import LoggedModelOutput

        src = out["versions"][a.linked_run - 1]
        with mlflow.start_run(run_name=f"evaluate-v{a.linked_run}") as run:
            mlflow.log_text("scores of the model\n", "eval/scores.txt")
            client.log_outputs(run.info.run_id, [LoggedModelOutput(src["model_id"], 0)])
        src["linked_run"] = run.info.run_id
        src["linked_run_artifact_uri"] = client.get_run(run.info.run_id).info.artifact_uri
    if a.deleted_logged_model:
        lm = client.create_logged_model(exp.experiment_id, name="unrelated")
        client.delete_logged_model(lm.model_id)
        out["deleted_logged_model"] = lm.model_id
    if a.other_model_from:
        src = out["versions"][a.other_model_from - 1]
        copy = f"{a.name}-copy"
        client.create_registered_model(copy)
        mv = client.create_model_version(copy, source=src["logged_model_artifact_location"])
        out["other_model"] = {"name": copy, "version": str(mv.version), "source": mv.source}
    if a.extra_version_from:
        src = out["versions"][a.extra_version_from - 1]
        mv = mlflow.register_model(src["model_uri"], a.name)
        mvd = client.get_model_version(a.name, str(mv.version))
        out["versions"].append({"version": str(mv.version), "run_id": mvd.run_id,
                                "source": mvd.source, "model_id": src["model_id"]})
    if a.versions >= 2:
        client.set_registered_model_alias(a.name, "champion", "2")
        out["alias"] = {"champion": "2"}
    out["seconds"] = round(time.time() - t0, 2)
    sys.stdout = real_stdout
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
