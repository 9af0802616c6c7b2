"""Build and judge Hugging Face caches with huggingface_hub itself.

    python hf_cache.py build SPEC.json   download every file of SPEC with
                                         hf_hub_download from a local fake
                                         Hub, so the cache has exactly the
                                         layout huggingface_hub writes
    python hf_cache.py scan CACHE        print scan_cache_dir's verdict as JSON
    python hf_cache.py delete CACHE REPO delete every revision of REPO with
                                         huggingface_hub's own deletion
                                         (scan_cache_dir().delete_revisions)

A file spec may carry "xet": 64 hex: the file is then moved into
huggingface_hub 2.4's cache-wide shared blob store, by the function its
download calls after a Xet download (publish_blob_to_shared_store), and the
repository's blob becomes a link into it; a second repository with the same
Xet hash links to the one payload.

SPEC: {"cache": DIR, "repos": [{"id": "org/name", "revisions": [{"ref":
"main", "commit": 40 hex, "files": {"path": {"text": "..."} or {"size": N,
"seed": S}}, "missing": ["path", ...]}]}]}. Files over 10,000 bytes are
served as LFS files (blob named by SHA-256), smaller ones as git files
(blob named by git blob SHA-1), as the Hub does. "missing" files answer
EntryNotFound, which huggingface_hub records under .no_exist/.
"""

import hashlib
import http.server
import json
import os
import random
import sys
import threading


def content(spec):
    if "text" in spec:
        return spec["text"].encode()
    rng = random.Random(spec["seed"])
    return bytes(rng.getrandbits(8) for _ in range(spec["size"]))


def etag(data):
    if len(data) > 10_000:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def serve(repos):
    """A fake Hub answering HEAD/GET /{org}/{name}/resolve/{rev}/{path}."""
    table = {}
    for repo in repos:
        for rev in repo["revisions"]:
            for key in (rev["ref"], rev["commit"]):
                files = {p: content(s) for p, s in rev["files"].items()}
                table[(repo["id"], key)] = (rev["commit"], files)

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, body):
            parts = self.path.split("?")[0].split("/")
            # ['', org, name, 'resolve', rev, *path]
            if len(parts) < 6 or parts[3] != "resolve":
                self.send_response(404)
                self.end_headers()
                return
            repo_id, rev, path = f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
            found = table.get((repo_id, rev))
            if found is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "RevisionNotFound")
                self.end_headers()
                return
            commit, files = found
            data = files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            tag = etag(data)
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{tag}"')
            if len(data) > 10_000:
                self.send_header("X-Linked-Etag", f'"{tag}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self.answer(False)

        def do_GET(self):
            self.answer(True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def build(spec_path):
    spec = json.load(open(spec_path))
    server = serve(spec["repos"])
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    from huggingface_hub.utils import _shared_blobs

    for repo in spec["repos"]:
        for rev in repo["revisions"]:
            for path, fspec in rev["files"].items():
                pointer = huggingface_hub.hf_hub_download(
                    repo["id"], path, revision=rev["ref"], cache_dir=spec["cache"]
                )
                if "xet" in fspec:
                    blob = os.path.realpath(pointer)
                    if not os.path.islink(os.path.join(os.path.dirname(pointer), os.readlink(pointer))):
                        ok = _shared_blobs.publish_blob_to_shared_store(
                            blob_path=blob,
                            xet_hash=fspec["xet"],
                            cache_dir=spec["cache"],
                            expected_size=os.path.getsize(blob),
                        )
                        if not ok:
                            sys.exit(f"{path}: not published to the shared blob store")
            for path in rev.get("missing", []):
                try:
                    huggingface_hub.hf_hub_download(
                        repo["id"], path, revision=rev["ref"], cache_dir=spec["cache"]
                    )
                    sys.exit(f"{path} should be missing")
                except EntryNotFoundError:
                    pass
    server.shutdown()
    print(json.dumps({"huggingface_hub": huggingface_hub.__version__}))


def scan(cache):
    import huggingface_hub

    info = huggingface_hub.scan_cache_dir(cache)
    print(
        json.dumps(
            {
                "huggingface_hub": huggingface_hub.__version__,
                "repos": sorted(
                    (
                        {
                            "id": r.repo_id,
                            "files": r.nb_files,
                            "size": r.size_on_disk,
                            "refs": sorted(r.refs),
                            "revisions": sorted(rv.commit_hash for rv in r.revisions),
                        }
                        for r in info.repos
                    ),
                    key=lambda r: r["id"],
                ),
                "warnings": [str(w) for w in info.warnings],
            }
        )
    )


def delete(cache, repo_id):
    import huggingface_hub

    info = huggingface_hub.scan_cache_dir(cache)
    revs = [rv.commit_hash for r in info.repos if r.repo_id == repo_id for rv in r.revisions]
    if not revs:
        sys.exit(f"{repo_id}: not in the cache")
    info.delete_revisions(*revs).execute()


if __name__ == "__main__":
    {"build": build, "scan": scan, "delete": delete}[sys.argv[1]](*sys.argv[2:])
