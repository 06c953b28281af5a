"""Runs moto's S3 server on 0.0.0.0:9000 and creates the buckets named in
$BUCKETS (comma-separated, default "cairn-tiles") before reporting ready, so
that no Cairn role sees a missing bucket."""

import os
import signal
import sys

import boto3
from moto.server import ThreadedMotoServer

port = int(os.environ.get("PORT", "9000"))
server = ThreadedMotoServer(ip_address="0.0.0.0", port=port)
server.start()
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    region_name="us-east-1",
    aws_access_key_id="compose",
    aws_secret_access_key="compose",
)
for bucket in os.environ.get("BUCKETS", "cairn-tiles").split(","):
    s3.create_bucket(Bucket=bucket.strip())
print(f"moto S3 on :{port} with buckets {os.environ.get('BUCKETS', 'cairn-tiles')}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
signal.pause()
