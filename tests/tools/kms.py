"""KMS and SSE-KMS objects on moto for the crypto-erase tests (boto3, from
the project's virtualenv).

  kms.py ENDPOINT create-key STACK        a customer-managed key made by a
                                          CloudFormation stack; prints its ARN
  kms.py ENDPOINT delete-stack STACK      deletes the stack and with it the key
                                          (moto does not run KMS's waiting
                                          period: this plays its end)
  kms.py ENDPOINT cancel ARN              CancelKeyDeletion
  kms.py ENDPOINT grant ARN               CreateGrant to another principal
  kms.py ENDPOINT put BUCKET KEY KMSKEY   PUT an object under SSE-KMS with KMSKEY
  kms.py ENDPOINT put-held BUCKET KEY KMSKEY   the same, under a legal hold
  kms.py ENDPOINT state ARN               the key's state, or "gone"
"""
import json
import sys

import boto3

endpoint, cmd, *args = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
kms = boto3.client("kms", **kw)


def key_id(arn):
    return arn.rsplit(":key/", 1)[-1]


if cmd == "create-key":
    cfn = boto3.client("cloudformation", **kw)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]})
    template = {"Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {
        "KeyPolicy": policy, "Description": "decom test key"}}}}
    cfn.create_stack(StackName=args[0], TemplateBody=json.dumps(template))
    kid = cfn.describe_stack_resources(StackName=args[0])["StackResources"][0]["PhysicalResourceId"]
    print(kms.describe_key(KeyId=kid)["KeyMetadata"]["Arn"])
elif cmd == "delete-stack":
    boto3.client("cloudformation", **kw).delete_stack(StackName=args[0])
elif cmd == "cancel":
    kms.cancel_key_deletion(KeyId=key_id(args[0]))
elif cmd == "grant":
    kms.create_grant(KeyId=key_id(args[0]), GranteePrincipal="arn:aws:iam::123456789012:role/other",
                     Operations=["Decrypt"])
elif cmd in ("put", "put-held"):
    bucket, key, kms_key = args
    extra = {"ObjectLockLegalHoldStatus": "ON"} if cmd == "put-held" else {}
    boto3.client("s3", **kw).put_object(Bucket=bucket, Key=key, Body=b"model bytes " + key.encode(),
                                        ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key, **extra)
elif cmd == "state":
    try:
        print(kms.describe_key(KeyId=key_id(args[0]))["KeyMetadata"]["KeyState"])
    except kms.exceptions.NotFoundException:
        print("gone")
else:
    sys.exit(f"unknown command {cmd}")
