"""Whether a registered model is gone, as MLflow's client sees it.

    mlflow_model_gone.py TRACKING_URI NAME  ->  prints "gone" or "exists"
"""
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

uri, name = sys.argv[1:3]
try:
    MlflowClient(uri, uri).get_registered_model(name)
    print("exists")
except MlflowException:
    print("gone")
