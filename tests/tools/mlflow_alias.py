"""Point an alias at another version with MLflow's client.

    mlflow_alias.py TRACKING_URI NAME ALIAS VERSION
"""
import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from mlflow import MlflowClient  # noqa: E402

uri, name, alias, version = sys.argv[1:5]
MlflowClient(uri, uri).set_registered_model_alias(name, alias, version)
