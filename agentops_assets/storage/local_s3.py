"""A local S3-compatible server (moto's server mode) for tests, benches and the distributed demo.

The lake and the LanceDB index accept ``s3://`` URIs; this module gives them a real S3 endpoint
on a loopback port, started from the project's own environment (``moto[server]``), so object
storage is exercised without a cloud account. Credentials are moto's dummy ones ("testing"):
nothing secret is stored or needed.

Example::

    with start_local_s3() as s3:
        with environment(**s3.env(prefix="demo")):
            ...  # every Delta table and the index now live in s3://agentops/demo/...

or from a shell (prints the ``export`` lines, serves until interrupted)::

    python -m agentops_assets.storage.local_s3 --port 9000
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BUCKET = "agentops"
REGION = "us-east-1"
# moto accepts any credentials; these are its documented dummy values, not secrets.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class LocalS3Error(RuntimeError):
    """The local S3 server could not be started or did not answer."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalS3:
    """A running moto S3 server and the bucket created on it.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT``.
        bucket: The bucket the lake and the index live in.
        process: The server's process (stopped by :meth:`stop`).
        log: The server's output, for diagnosing a failed start.
    """

    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def credentials(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point S3 clients (delta-rs, polars, pyarrow, boto3,
        LanceDB through config.py) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def env(self, prefix: str = "agentops") -> dict[str, str]:
        """Environment variables that put the lake and the LanceDB index on this server.

        Args:
            prefix: Key prefix inside the bucket; each user (a test, the demo) takes its own so
                they never see each other's tables.

        Returns:
            ``AGENTOPS_LAKE_URI`` (``s3://bucket/prefix/lake``), ``AGENTOPS_INDEX_URI``
            (``s3://bucket/prefix/lance``) and the ``AWS_*`` credentials and endpoint.
        """
        base = f"s3://{self.bucket}/{prefix.strip('/')}"
        return {
            "AGENTOPS_LAKE_URI": f"{base}/lake",
            "AGENTOPS_INDEX_URI": f"{base}/lance",
            **self.credentials(),
        }

    def client(self):  # noqa: ANN201 (boto3's client type is generated at run time)
        """A boto3 S3 client on this server (to list or inspect objects in tests)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (no error when it exists already)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)

    def stop(self) -> None:
        """Stop the server (its objects live in memory and are gone with it)."""
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> LocalS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def start_local_s3(
    *,
    port: int | None = None,
    bucket: str = DEFAULT_BUCKET,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> LocalS3:
    """Start moto's S3 server as a subprocess, wait until it answers, create ``bucket``.

    Args:
        port: The port to listen on; a free one when omitted.
        bucket: The bucket to create.
        host: The address to bind; loopback by default (the server has no authentication).
        timeout: Seconds to wait for the server to answer.

    Returns:
        The running server; stop it with :meth:`LocalS3.stop` or use it as a context manager.

    Raises:
        LocalS3Error: The server exited or did not answer within ``timeout``.
    """
    port = port or free_port(host)
    endpoint = f"http://{host}:{port}"
    log = Path(tempfile.mkstemp(prefix="agentops-s3-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LocalS3(endpoint=endpoint, bucket=bucket, process=process, log=log)
    deadline = time.monotonic() + timeout
    while not _answers(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise LocalS3Error(
                f"The local S3 server on {endpoint} did not start (is the port free and "
                f"moto[server] installed?); its output: {tail}"
            )
        time.sleep(0.1)
    server.create_bucket(bucket)
    return server


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, printing the ``export`` lines for a shell."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--prefix", default="agentops", help="key prefix for lake and index")
    args = parser.parse_args(argv)
    with start_local_s3(port=args.port, bucket=args.bucket) as server:
        for name, value in server.env(args.prefix).items():
            print(f"export {name}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()


if __name__ == "__main__":
    main()
