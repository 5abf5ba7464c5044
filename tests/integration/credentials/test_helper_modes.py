"""The bundled helper's serve / update / cache against ra_local + moto, checked with real clients."""
import configparser
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

AWS_CLI = str(Path(sys.executable).parent / "aws")


def start_serve(helper, stand, args):
    proc = subprocess.Popen([str(helper), *args, "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=stand.env(), text=True)
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            line = proc.stderr.readline()
            seen.append(line)
            if "Local server started on port: " in line:
                return proc, int(line.rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
    stop(proc)
    raise AssertionError(f"serve did not start: {seen}")


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def imds(port, path, method="GET", headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def caller_arn(stand, env):
    proc = subprocess.run([AWS_CLI, "sts", "get-caller-identity", "--output", "json"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["Arn"]


def serial_hex(cert):
    return format(cert.serial_number, "x")


@pytest.mark.slow
def test_serve_feeds_the_aws_cli_and_follows_a_rotated_certificate(stand, installed_helper, tmp_path):
    cert_path = tmp_path / "host.pem"
    first = stand.issue(cert_path)
    # 900 s sessions are inside the 15-minute refresh margin: every credentials request signs anew.
    proc, port = start_serve(installed_helper, stand,
                             stand.helper_args("serve", certificate=cert_path, session_duration=900))
    try:
        status, _ = imds(port, "/latest/meta-data/iam/security-credentials/")
        assert status == 401
        assert imds(port, "/latest/api/token", "PUT", {"X-Forwarded-For": "1.2.3.4"})[0] == 400
        status, token = imds(port, "/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        assert status == 200 and len(token) == 100
        status, role = imds(port, "/latest/meta-data/iam/security-credentials/", headers={"X-aws-ec2-metadata-token": token})
        assert (status, role) == (200, stand.arns["role_name"])
        status, body = imds(port, f"/latest/meta-data/iam/security-credentials/{role}",
                            headers={"X-aws-ec2-metadata-token": token})
        document = json.loads(body)
        assert status == 200 and list(document) == ["AccessKeyId", "SecretAccessKey", "Token", "Code", "Type",
                                                    "Expiration", "LastUpdated"]
        assert document["Code"] == "Success" and document["AccessKeyId"].startswith("ASIA")

        home = tmp_path / "home"
        home.mkdir()
        env = stand.env(HOME=str(home), AWS_ENDPOINT_URL=stand.ra.moto.endpoint, AWS_DEFAULT_REGION="us-east-1",
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{port}/")
        prefix = f"arn:aws:sts::{stand.ra.account}:assumed-role/{stand.arns['role_name']}/"
        assert caller_arn(stand, env) == prefix + serial_hex(first)

        rotated = stand.issue(tmp_path / "next.pem")
        os.replace(tmp_path / "next.pem", cert_path)
        assert caller_arn(stand, env) == prefix + serial_hex(rotated)
        assert proc.poll() is None
    finally:
        stop(proc)


def test_serve_never_answers_200_with_empty_credentials(stand, installed_helper):
    args = stand.helper_args("serve")
    args[args.index("--endpoint") + 1] = "http://127.0.0.1:9"
    proc, port = start_serve(installed_helper, stand, args)
    try:
        _, token = imds(port, "/latest/api/token", "PUT")
        status, body = imds(port, f"/latest/meta-data/iam/security-credentials/{stand.arns['role_name']}",
                            headers={"X-aws-ec2-metadata-token": token})
        assert status == 500 and "AccessKeyId" not in body
    finally:
        stop(proc)


OTHER = "# keep this comment\n[other]\naws_access_key_id = AKIAKEEP\nregion = eu-west-1\n"


def test_update_once_writes_a_profile_the_cli_can_use(stand, installed_helper, tmp_path):
    credentials = tmp_path / "aws" / "credentials"
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text(OTHER)
    env = stand.env(AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    proc = subprocess.run([str(installed_helper), *stand.helper_args("update", profile="ra"), "--once"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "credentials for profile ra written" in proc.stderr
    text = credentials.read_text()
    assert text.startswith(OTHER)
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["other"]["aws_access_key_id"] == "AKIAKEEP"
    assert parser["ra"]["aws_access_key_id"].startswith("ASIA") and parser["ra"]["aws_session_token"]
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

    home = tmp_path / "home"
    home.mkdir()
    cli_env = stand.env(HOME=str(home), AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_DEFAULT_REGION="us-east-1",
                        AWS_ENDPOINT_URL=stand.ra.moto.endpoint, AWS_PROFILE="ra")
    assert caller_arn(stand, cli_env).startswith(f"arn:aws:sts::{stand.ra.account}:assumed-role/")


@pytest.mark.slow
def test_killed_update_never_leaves_a_truncated_file(stand, installed_helper, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(OTHER)
    env = stand.env(AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    args = [str(installed_helper), "update", "--once", "--profile", "ra", "--certificate", str(stand.file_cert_path),
            "--private-key", str(stand.file_key_path), "--trust-anchor-arn", stand.arns["trust_anchor_arn"],
            "--profile-arn", stand.arns["profile_arn"], "--role-arn", stand.arns["role_arn"],
            "--endpoint", stand.ra.url]
    start = time.monotonic()
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=60)
    full_run = time.monotonic() - start  # kill times spread around it, whatever the machine's load
    # The kill time walks around the run's real duration (shorter after a run finished, longer after a kill),
    # so kills land close to the write whatever the machine's load.
    factor, completed, killed = 0.9, 0, 0
    for _ in range(16):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(factor * full_run)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        if proc.wait() == 0:
            completed, factor = completed + 1, factor * 0.85
        else:
            killed, factor = killed + 1, factor * 1.2
        text = credentials.read_text()
        assert text.startswith(OTHER)
        parser = configparser.ConfigParser()
        parser.read_string(text)
        if parser.has_section("ra"):
            assert set(parser["ra"]) == {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
            assert all(parser["ra"].values())
    assert completed and killed  # some runs rewrote the file, others were killed on the way


def test_update_retries_outages_with_backoff_then_exits_1(stand, installed_helper, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(OTHER)
    args = stand.helper_args("update") + ["--once"]
    args[args.index("--endpoint") + 1] = "http://127.0.0.1:9"
    proc = subprocess.run([str(installed_helper), *args], capture_output=True, text=True,
                          env=stand.env(AWS_SHARED_CREDENTIALS_FILE=str(credentials)), timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [line.split(" ", 2)[2] for line in lines[:2]] == [
        "cannot reach the Roles Anywhere endpoint http://127.0.0.1:9: Connection refused; retrying in 1s",
        "cannot reach the Roles Anywhere endpoint http://127.0.0.1:9: Connection refused; retrying in 2s",
    ]
    assert len(lines) == 3 and credentials.read_text() == OTHER


def test_cache_reuses_credentials_until_the_certificate_changes(stand, installed_helper, tmp_path):
    cert_path = tmp_path / "host.pem"
    shutil.copy(stand.cert_path, cert_path)
    cache = tmp_path / "cache"
    args = stand.helper_args(certificate=cert_path, cache_dir=cache)
    first = subprocess.run([str(installed_helper), *args], capture_output=True, text=True, env=stand.env())
    second = subprocess.run([str(installed_helper), *args], capture_output=True, text=True, env=stand.env())
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    # a new CreateSession would mint new keys: identical output proves the cache answered
    assert second.stdout == first.stdout and not second.stdout.endswith("\n")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    (entry,) = list(cache.iterdir())
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    # named by a digest of the request (never by the key URI, which may carry a PIN); holds only credentials
    assert re.fullmatch(r"[0-9a-f]{32}\.json", entry.name), entry.name
    cached = json.loads(entry.read_text())
    assert stand.token.pin not in [str(v) for v in cached.values()] and "pin" not in {k.lower() for k in cached}

    stand.issue(cert_path)
    third = subprocess.run([str(installed_helper), *args], capture_output=True, text=True, env=stand.env())
    assert third.returncode == 0 and json.loads(third.stdout)["AccessKeyId"] != json.loads(first.stdout)["AccessKeyId"]

    os.chmod(cache, 0o755)
    refused = subprocess.run([str(installed_helper), *stand.helper_args(cache_dir=cache)], capture_output=True,
                             text=True, env=stand.env())
    assert refused.returncode == 1 and "is not private" in refused.stderr and refused.stdout == ""
