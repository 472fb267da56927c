"""A loopback S3 server for tests and benchmarks: moto's server mode (`moto_server`, from the
`moto[server]` package) as a subprocess on a free 127.0.0.1 port, stopped at the end. It speaks
the S3 REST API to boto3 as a real endpoint would (PUT/GET/LIST/DELETE, ETags, pagination) and
keeps everything in memory. `lake_environment` gives the variables that put a lake on one bucket.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.process_support import free_port, wait_for

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "LAKE_S3_REGION": "us-east-1"}


class S3Server:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def client(self):
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def bucket(self, prefix: str = "lake") -> str:
        """A new empty bucket; one per test, so no test sees another's objects."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def lake_environment(self, bucket: str, prefix: str = "node") -> dict[str, str]:
        return {**CREDENTIALS, "LAKE_URL": f"s3://{bucket}/{prefix}", "LAKE_S3_ENDPOINT_URL": self.endpoint}


@contextlib.contextmanager
def s3_server(log: Path | None = None) -> Iterator[S3Server]:
    """moto's S3 server on loopback for the `with` block."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL
    # No proxy variables: boto3 must talk to loopback directly.
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out, stderr=subprocess.STDOUT, env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500
        except httpx.TransportError:
            return process.poll() is not None

    try:
        assert wait_for(up, 60) and process.poll() is None, "moto server did not start"
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()
