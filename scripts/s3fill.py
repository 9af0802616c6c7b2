"""Benchmark helper for the S3 part of scripts/bench.sh.

  s3fill.py ENDPOINT fill BUCKET N   a versioned bucket with N object versions (two per key)
  s3fill.py ENDPOINT fill-flat BUCKET N   N objects, no versioning (Garage)
  s3fill.py ENDPOINT count-flat BUCKET    objects left under model/ (ListObjectsV2)
  s3fill.py ENDPOINT count BUCKET    what is left under model/ (versions + markers + uploads)
  s3fill.py ENDPOINT probe BUCKET    the server's own ceiling: pages and seconds of one full
                                     version listing, and HEADs of absent keys per second
                                     (the better of 1 and 4 kept-alive connections)
"""
import http.client, multiprocessing, re, sys, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor
import boto3


def heads(job):
    endpoint, bucket, worker, n = job
    u = urllib.parse.urlparse(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    for i in range(n):
        conn.request("HEAD", f"/{bucket}/model/absent-{worker}-{i:05}.bin")
        r = conn.getresponse()
        r.read()
        assert r.status == 404, r.status


def list_pages(endpoint, bucket):
    """Page through ListObjectVersions over plain HTTP (no SDK parsing, so the
    time is the server's); returns the page count."""
    u = urllib.parse.urlparse(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    query, pages = {"versions": "", "prefix": "model/"}, 0
    while True:
        conn.request("GET", f"/{bucket}?" + urllib.parse.urlencode(query))
        r = conn.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body[:200])
        pages += 1
        if "<IsTruncated>true</IsTruncated>" not in body:
            return pages
        for tag, param in (("NextKeyMarker", "key-marker"), ("NextVersionIdMarker", "version-id-marker")):
            m = re.search(f"<{tag}>(.*?)</{tag}>", body)
            if m:
                query[param] = m[1]


def main():
    endpoint, cmd, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    if cmd in ("fill", "fill-flat"):
        n = int(sys.argv[4])
        s3.create_bucket(Bucket=bucket)
        if cmd == "fill":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            keys = [f"model/shard-{i // 2:05}.bin" for i in range(n)]  # two versions per key
        else:  # a store without versioning: n objects
            keys = [f"model/shard-{i:05}.bin" for i in range(n)]
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x" * 1024), keys))
    elif cmd == "count-flat":
        left = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="model/"):
            left += len(page.get("Contents", []))
        print(left)
    elif cmd == "count":
        left = 0
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="model/"):
            left += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        left += len(s3.list_multipart_uploads(Bucket=bucket, Prefix="model/").get("Uploads", []))
        print(left)
    elif cmd == "probe":
        t = time.time()
        pages = list_pages(endpoint, bucket)
        list_s = time.time() - t
        best = 0.0
        for procs in (1, 4):
            t = time.time()
            with multiprocessing.Pool(procs) as pool:
                pool.map(heads, [(endpoint, bucket, i, 1000 // procs) for i in range(procs)])
            best = max(best, 1000 / (time.time() - t))
        print(pages, f"{list_s:.3f}", f"{best:.1f}")
    else:
        sys.exit(f"s3fill.py: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
