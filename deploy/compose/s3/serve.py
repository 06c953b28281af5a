"""Runs moto's S3 server on 0.0.0.0:9000 and creates the buckets named in
$BUCKETS (comma-separated, default "cairn-tiles") before reporting ready, so
that no Cairn role sees a missing bucket. Objects are readable without
credentials, as a log's tiles are through a CDN; writes need them."""

import json
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
    name = bucket.strip()
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(
        Bucket=name,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{name}/*",
                    }
                ],
            }
        ),
    )
print(f"moto S3 on :{port} with buckets {os.environ.get('BUCKETS', 'cairn-tiles')}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
signal.pause()
