"""The old Python client's selective download, re-created with boto3 for a same-run comparison.

What the old client did (storage spec): list the dataset prefix, download the annotation files,
read the primary one's images[].file_name, then fetch every image with 8 threads
(`download_file` per object). Prints one JSON line: {"files": N, "seconds": S}.

    python3 bench/support/python_selective_download.py <endpoint> <bucket> <prefix> <dest>
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, bucket, prefix, dest = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="S3RVER",
    aws_secret_access_key="S3RVER",
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, max_pool_connections=10, request_checksum_calculation="when_required"),
)

started = time.perf_counter()
listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)  # one page, as the old client did
annotations = sorted(
    o["Key"] for o in listing.get("Contents", [])
    if "/" not in o["Key"][len(prefix):] and o["Key"][len(prefix):].startswith("annotations") and o["Key"].endswith(".json")
)
os.makedirs(dest, exist_ok=True)
for key in annotations:
    s3.download_file(bucket, key, os.path.join(dest, os.path.basename(key)))
primary = next((k for k in annotations if "detection" in os.path.basename(k)), annotations[0])
with open(os.path.join(dest, os.path.basename(primary))) as f:
    names = [image["file_name"] for image in json.load(f)["images"]]


def fetch(name):
    local = os.path.join(dest, "images", name)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    s3.download_file(bucket, f"{prefix}images/{name}", local)


with ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(fetch, names))
seconds = time.perf_counter() - started
print(json.dumps({"files": len(annotations) + len(names), "seconds": seconds}))
