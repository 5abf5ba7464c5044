"""Fixtures for the gate's tests: a moto server on loopback and aws_gate in front of it.

The moto fixture is our own until tests/support/aws.py (engineer C) provides ``moto_server``.
"""
import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from aws_gate.process import running_gate

REPO = Path(__file__).resolve().parents[2]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_moto(log_path: Path, **settings: str):
    """moto server on 127.0.0.1 with AWS managed policies loaded; ``settings`` are extra environment."""
    port = _free_port()
    env = {**os.environ, **AWS_ENV, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **settings}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start; see {log_path}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def gate_moto_url(tmp_path_factory):
    """moto server without IAM enforcement (AmazonS3FullAccess / AmazonS3ReadOnlyAccess exist)."""
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def gate(gate_moto_url, tmp_path_factory):
    """aws_gate on 127.0.0.1 in front of the moto server."""
    with running_gate(gate_moto_url, tmp_path_factory.mktemp("gate") / "aws_gate.log", env=AWS_ENV) as process:
        yield process
