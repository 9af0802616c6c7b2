"""Log a new (empty) logged model as an output of an existing run, with
MLflow's client: the run now logged a model it did not log before.

    mlflow_link_model.py TRACKING_URI RUN_ID  ->  prints the new model's id
"""
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput  # noqa: E402

uri, run_id = sys.argv[1:3]
c = MlflowClient(uri)
run = c.get_run(run_id)
lm = c.create_logged_model(run.info.experiment_id, name="later")
c.log_outputs(run_id, [LoggedModelOutput(lm.model_id, 1)])
print(lm.model_id)
