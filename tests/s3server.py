"""A real S3 endpoint for tests: moto's server mode in a child process on 127.0.0.1.

    with moto_s3_server() as endpoint:           # "http://127.0.0.1:<port>"
        create_bucket(endpoint, "kray-test")
        storage = InternalStorage("s3://kray-test/root", **s3_storage_options(endpoint))

A child process rather than moto's in-process thread: the server keeps running while Ray
workers (other processes) reach it, and its warnings and logs stay out of the test process.
Use it from a session-scoped fixture (see ``tests/storage/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

ACCESS_KEY = "kray-test"
SECRET_KEY = "kray-test-secret"
REGION = "us-east-1"


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(endpoint: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    return False


@contextlib.contextmanager
def moto_s3_server(timeout: float = 30.0, attempts: int = 3) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free local port, yield its endpoint URL, and stop
    it (the child only, by its own handle) on exit. Retries on another port if the chosen one
    was taken in the meantime."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION)
    with tempfile.TemporaryFile() as log:
        for _ in range(attempts):
            port = _free_port()
            endpoint = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                if _wait_until_up(endpoint, proc, timeout):
                    yield endpoint
                    return
            finally:
                _stop(proc)
        log.seek(0)
        tail = log.read()[-2000:].decode(errors="replace")
        raise RuntimeError(f"moto server did not start after {attempts} attempts:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """fsspec/s3fs options for the moto endpoint (explicit keys: no credential lookup)."""
    return {"key": ACCESS_KEY, "secret": SECRET_KEY,
            "client_kwargs": {"endpoint_url": endpoint, "region_name": REGION}}


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION)
    try:
        client.create_bucket(Bucket=bucket)
    finally:
        client.close()
