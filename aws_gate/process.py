# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the gate as a child process, for fixtures and the demo: ``with running_gate(upstream) as gate:``."""
from __future__ import annotations

import os
import selectors
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

_REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GateProcess:
    url: str  # http://HOST:PORT: the endpoint for clients (boto3 endpoint_url, aws --endpoint-url)
    pid: int
    log_path: Path


@contextmanager
def running_gate(upstream: str, log_path: Path, host: str = "127.0.0.1", port: int = 0,
                 env: dict[str, str] | None = None, timeout: float = 15.0) -> Iterator[GateProcess]:
    """Start ``python -m aws_gate``, wait for its "listening" line, stop it by its PID afterwards.

    ``env`` adds to the environment, e.g. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of a moto IAM user
    when moto enforces IAM. The gate's log (its decisions) goes to ``log_path``.
    """
    command = [sys.executable, "-m", "aws_gate", "--host", host, "--port", str(port), "--upstream", upstream]
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPOSITORY), environment.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                   env=environment, cwd=_REPOSITORY)
    try:
        url = _await_listening(process, timeout, log_path)
        yield GateProcess(url, process.pid, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _await_listening(process: subprocess.Popen, timeout: float, log_path: Path) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if selector.select(timeout):
            line = process.stdout.readline().decode().strip()
            if line.startswith("aws_gate listening on "):
                return line.rsplit(" ", 1)[-1]
    raise RuntimeError(f"aws_gate did not start (exit code {process.poll()}); see {log_path}")
