"""GCS fixtures for decom's tests, made with Google's own Python client
(google-cloud-storage, pinned in scripts/requirements-test.txt).

    gcs.py ENDPOINT OPS_JSON

runs a list of operations against the JSON API at ENDPOINT (fake-gcs-server
behind scripts/gcs_shim.py, or the bare emulator) and prints one JSON answer
per operation, as a JSON list:

    {"op": "bucket", "name": B, "versioning": true, "soft_delete_seconds": N,
     "lifecycle": [rule, ...], "retention_seconds": N}        -> null
    {"op": "put", "bucket": B, "name": N, "data": TEXT}        -> generation
    {"op": "hold", "bucket": B, "name": N}                     -> metageneration
    {"op": "delete", "bucket": B, "name": N}                   -> null (live only)
    {"op": "list", "bucket": B, "prefix": P}                   -> [[name, generation, live], ...]
    {"op": "soft_deleted", "bucket": B, "prefix": P}           -> [[name, generation], ...]
    {"op": "read", "bucket": B, "name": N, "generation": G}    -> text or null
    {"op": "delete_generation", "bucket": B, "name": N, "generation": G} -> null
    {"op": "bucket_json", "bucket": B}                         -> the bucket resource's text
    {"op": "faults", "bucket": B, ...}                         -> the shim's test controls
"""
import json
import sys
import urllib.request

from google.auth.credentials import AnonymousCredentials
from google.api_core import exceptions
from google.cloud import storage


def client(endpoint):
    return storage.Client(
        project="decom-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


def bucket(c, op):
    b = c.bucket(op["name"])
    b.versioning_enabled = op.get("versioning", False)
    if "soft_delete_seconds" in op:
        b.soft_delete_policy.retention_duration_seconds = op["soft_delete_seconds"]
    if "retention_seconds" in op:
        b.retention_period = op["retention_seconds"]
    c.create_bucket(b)
    if "lifecycle" in op:
        # As written, so the test can compare the bytes that come back.
        raw = json.dumps({"lifecycle": {"rule": op["lifecycle"]}})
        req = urllib.request.Request(
            f"{c._connection.API_BASE_URL}/storage/v1/b/{op['name']}",
            data=raw.encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req).read()
    return None


def listing(c, op, soft=False):
    if soft:
        blobs = c.list_blobs(op["bucket"], prefix=op.get("prefix", ""), soft_deleted=True)
        return [[b.name, str(b.generation)] for b in blobs]
    # "true", not True: fake-gcs-server reads only the lowercase word.
    blobs = c.list_blobs(op["bucket"], prefix=op.get("prefix", ""), versions="true")
    return sorted([b.name, str(b.generation), b.time_deleted is None] for b in blobs)


def read(c, op):
    blob = c.bucket(op["bucket"]).blob(op["name"], generation=int(op["generation"]))
    try:
        return blob.download_as_bytes().decode()
    except exceptions.NotFound:
        return None


def raw_get(c, path):
    with urllib.request.urlopen(f"{c._connection.API_BASE_URL}{path}") as r:
        return r.read().decode()


def run(c, op):
    kind = op["op"]
    if kind == "bucket":
        return bucket(c, op)
    if kind == "put":
        blob = c.bucket(op["bucket"]).blob(op["name"])
        blob.upload_from_string(op["data"].encode())
        return str(blob.generation)
    if kind == "hold":
        blob = c.bucket(op["bucket"]).get_blob(op["name"])
        blob.temporary_hold = True
        blob.patch()
        return str(blob.metageneration)
    if kind == "delete":
        c.bucket(op["bucket"]).blob(op["name"]).delete()
        return None
    if kind == "list":
        return listing(c, op)
    if kind == "soft_deleted":
        return listing(c, op, soft=True)
    if kind == "read":
        return read(c, op)
    if kind == "soft_delete_policy":
        req = urllib.request.Request(
            f"{c._connection.API_BASE_URL}/storage/v1/b/{op['bucket']}",
            data=json.dumps({"softDeletePolicy": {"retentionDurationSeconds": str(op["seconds"])}}).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req).read()
        return None
    if kind == "bucket_json":
        # Exactly as the store wrote it (the test reads the rules' bytes).
        return raw_get(c, f"/storage/v1/b/{op['bucket']}")
    if kind == "delete_generation":
        c.bucket(op["bucket"]).blob(op["name"], generation=int(op["generation"])).delete()
        return None
    if kind == "faults":
        body = {k: v for k, v in op.items() if k != "op"}
        bucket_name = body.pop("bucket")
        faults = {k: [f"{bucket_name}/{x}" for x in v] if isinstance(v, list) else dict(v, bucket=bucket_name)
                  for k, v in body.items()}
        req = urllib.request.Request(
            f"{c._connection.API_BASE_URL}/_shim/faults",
            data=json.dumps(faults).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req).read()
        return None
    raise SystemExit(f"unknown op {kind!r}")


def main():
    endpoint, ops = sys.argv[1], json.loads(sys.argv[2])
    c = client(endpoint)
    print(json.dumps([run(c, op) for op in ops]))


if __name__ == "__main__":
    main()
