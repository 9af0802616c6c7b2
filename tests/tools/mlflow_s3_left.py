"""Count every object version and delete marker under a prefix (moto).

    mlflow_s3_left.py ENDPOINT BUCKET PREFIX  ->  prints the count
"""
import sys

import boto3

ep, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
n = 0
for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
    n += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
print(n)
