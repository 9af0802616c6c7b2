"""What MLflow's own client sees of a registered model after a disposal.

    mlflow_check.py TRACKING_URI NAME RUN_ID[,RUN_ID...] [VERSION ...]

Prints JSON: for each VERSION whether it still exists and whether
`mlflow.pyfunc.load_model("models:/NAME/VERSION")` loads and predicts, the
versions the registry lists, whether the run still exists (`run`: the
first run's lifecycle stage or null; `runs`: each run's), and the aliases
of the model.
"""
import json
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def main():
    uri, name, run_id, versions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    mlflow.set_tracking_uri(uri)
    c = MlflowClient(uri, uri)
    out = {"versions": {}, "listed": sorted(v.version for v in c.search_model_versions(f"name='{name}'"))}
    for v in versions:
        entry = {"exists": True, "loads": False}
        try:
            c.get_model_version(name, v)
        except MlflowException:
            entry["exists"] = False
        if entry["exists"]:
            try:
                model = mlflow.pyfunc.load_model(f"models:/{name}/{v}")
                entry["predicts"] = model.predict([1.0])
                entry["loads"] = True
            except Exception as e:  # what failed, for the test's message
                entry["error"] = repr(e)[:300]
        out["versions"][v] = entry
    out["runs"] = {}
    for r in run_id.split(","):
        try:
            out["runs"][r] = c.get_run(r).info.lifecycle_stage
        except MlflowException:
            out["runs"][r] = None
    out["run"] = out["runs"][run_id.split(",")[0]]
    out["aliases"] = c.get_registered_model(name).aliases
    sys.stdout = real_stdout
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
