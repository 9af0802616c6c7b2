"""A logged model's row in a SQLite backend store, as `mlflow gc` sees it
(the REST API answers RESOURCE_DOES_NOT_EXIST for deleted and purged alike).

    mlflow_logged_model_row.py sqlite:///PATH MODEL_ID  ->  prints its
    lifecycle_stage ("active", "deleted") or "purged" when there is no row
"""
import sqlite3
import sys

db, model_id = sys.argv[1], sys.argv[2]
with sqlite3.connect(db.removeprefix("sqlite:///")) as c:
    row = c.execute("select lifecycle_stage from logged_models where model_id = ?",
                    (model_id,)).fetchone()
print(row[0] if row else "purged")
