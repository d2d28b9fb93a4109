"""A real S3 API for the tests: moto's standalone server (``moto_server``) on a free port.

The endpoint reaches fsspec the standard ways: ``storage_options={"endpoint_url": ...}`` in
this process, ``FSSPEC_S3_ENDPOINT_URL`` in subprocesses (see :func:`S3Server.environ`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    """A running ``moto_server``; :meth:`stop` ends it."""

    process: subprocess.Popen
    endpoint: str

    @property
    def storage_options(self) -> dict:
        return {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing"}

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment of a subprocess that reaches this server through fsspec."""
        return dict(os.environ, **CREDENTIALS, FSSPEC_S3_ENDPOINT_URL=self.endpoint, **extra)

    def create_bucket(self, name: str) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def start_s3_server(timeout: float = 60.0) -> S3Server:
    """Start ``moto_server -p 0`` (the OS picks a free port) and wait until it answers."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    assert executable, 'moto_server not found: pip install "moto[server]"'
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, **CREDENTIALS),
    )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
        if match:
            server = S3Server(process, match.group(1))
            break
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moto_server did not start")
    else:
        raise RuntimeError(f"moto_server exited with code {process.wait()}")
    # Keep draining its request log so the pipe never fills.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return server
