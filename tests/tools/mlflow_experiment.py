"""Experiments as MLflow's own client handles them.

    mlflow_experiment.py TRACKING_URI delete-new NAME  ->  creates an
        experiment and deletes it (the deleted stage: restorable, and what
        `mlflow gc` purges whatever run ids it is given); prints its id
    mlflow_experiment.py TRACKING_URI stage ID         ->  prints its
        lifecycle stage ("active", "deleted") or "purged"
    mlflow_experiment.py TRACKING_URI restore ID
"""
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

uri, what, arg = sys.argv[1:4]
c = MlflowClient(uri)
if what == "delete-new":
    eid = c.create_experiment(arg)
    c.delete_experiment(eid)
    print(eid)
elif what == "stage":
    try:
        print(c.get_experiment(arg).lifecycle_stage)
    except MlflowException:
        print("purged")
elif what == "restore":
    c.restore_experiment(arg)
else:
    sys.exit(f"unknown: {what}")
