"""The GCS purge peer for scripts/bench-gcs.sh: what a careful user without
gcloud would write with Google's Python client (google-cloud-storage,
pinned in scripts/requirements-test.txt).

    gcs_peer.py ENDPOINT BUCKET PREFIX

lists every generation under PREFIX (versions="true": fake-gcs-server reads
only the lowercase word), then deletes each by generation, with
if_metageneration_match set to the metageneration the listing showed (a
generation whose holds or metadata changed since is refused, not deleted),
in JSON API batches of 100 calls (GCS takes at most 100 per batch; the
client would defer up to 1000), one batch after another, with
raise_exception=False so that one refused call does not hide the others.
Prints one JSON line: {"deleted": n, "errors": n, "seconds": s}, seconds
from the client's creation to the last batch's answer (the interpreter's
start and the imports excluded). It proves nothing afterwards: what is left
is for the caller to list.
"""
import json
import sys
import time

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

BATCH = 100


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gcs_peer.py ENDPOINT BUCKET PREFIX")
    endpoint, bucket, prefix = sys.argv[1:]
    start = time.monotonic()
    client = storage.Client(
        project="decom-bench",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
    # Each listed Blob carries its generation and metageneration; delete()
    # names that generation.
    blobs = list(client.list_blobs(bucket, prefix=prefix, versions="true"))
    deleted = errors = 0
    for i in range(0, len(blobs), BATCH):
        batch = client.batch(raise_exception=False)
        with batch:
            for blob in blobs[i:i + BATCH]:
                blob.delete(if_metageneration_match=blob.metageneration)
        # With raise_exception=False a refused call stays in the batch's
        # answers (one per call, in order) instead of raising.
        for answer in batch._responses:
            if 200 <= answer.status_code < 300:
                deleted += 1
            else:
                errors += 1
                print(f"gcs_peer: {answer.status_code} {answer.text[:200]}", file=sys.stderr)
    seconds = time.monotonic() - start
    print(json.dumps({"deleted": deleted, "errors": errors, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
