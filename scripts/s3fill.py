"""Benchmark helper: fill a versioned bucket with N object versions, or count
what is left under the prefix (versions + delete markers + uploads)."""
import sys
from concurrent.futures import ThreadPoolExecutor
import boto3

endpoint, cmd, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=endpoint)
if cmd == "fill":
    n = int(sys.argv[4])
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"model/shard-{i // 2:05}.bin" for i in range(n)]  # two versions per key
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x" * 1024), keys))
elif cmd == "count":
    left = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="model/"):
        left += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    left += len(s3.list_multipart_uploads(Bucket=bucket, Prefix="model/").get("Uploads", []))
    print(left)
