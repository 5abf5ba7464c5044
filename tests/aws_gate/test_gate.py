"""The seed's narrowing at the gate: an IAM-enforcing moto server, aws_gate in front, a role session.

The role has AmazonS3FullAccess; the session is assumed through the gate with AmazonS3ReadOnlyAccess
plus the seed's inline deny (every bucket but one, any address outside the fleet's range). Clients are
the real aws CLI, boto3 and raw SigV4 requests sent from a second loopback address.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from aws_gate.process import running_gate
from tests.aws_gate.clients import REPO, aws_cli, client, signed_request

ROLE_NAME = "gate-fleet-s3"
ALLOWED, OTHER = "gate-allowed", "gate-other"
ALLOWED_RANGE = "127.0.0.1/32"  # the gate sees local clients as 127.0.0.1; 127.0.0.2 stands for another host
OUTSIDE_ADDRESS = "127.0.0.2"
SEED_SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "OnlyTheFleetBucket", "Effect": "Deny", "NotAction": "s3:ListAllMyBuckets",
         "NotResource": [f"arn:aws:s3:::{ALLOWED}", f"arn:aws:s3:::{ALLOWED}/*"]},
        {"Sid": "OnlyFromTheFleetNetwork", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": [ALLOWED_RANGE]}}},
    ],
}
READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def admin_keys(moto_server):
    return {"AccessKeyId": moto_server.admin.access_key_id, "SecretAccessKey": moto_server.admin.secret_access_key}


@pytest.fixture(scope="module")
def role_arn(moto_server):
    """A role the admin user may assume (moto checks AssumeRole callers against Principal.AWS)."""
    for bucket in (ALLOWED, OTHER):
        moto_server.client("s3").create_bucket(Bucket=bucket)
        moto_server.client("s3").put_object(Bucket=bucket, Key="report.txt", Body=b"fleet data")
    iam = moto_server.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{moto_server.account}:user/admin"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    return arn


@pytest.fixture(scope="module")
def seed(gate, moto_server, role_arn):
    """Session credentials assumed through the gate with the seed's session policies."""
    return client("sts", gate.url, admin_keys(moto_server)).assume_role(
        RoleArn=role_arn, RoleSessionName="host1", DurationSeconds=900, PolicyArns=[{"arn": READ_ONLY}],
        Policy=json.dumps(SEED_SESSION_POLICY))["Credentials"]


def test_s3_ls_works(gate, seed, tmp_path):
    result = aws_cli(gate.url, seed, "s3", "ls", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ALLOWED in result.stdout and OTHER in result.stdout


def test_put_object_is_denied_by_the_read_only_session_policy(gate, moto_server, seed, tmp_path):
    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"must not arrive")
    result = aws_cli(gate.url, seed, "s3api", "put-object", "--bucket", ALLOWED, "--key", "new.txt",
                     "--body", str(upload), home=tmp_path)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert "because no session policy allows the s3:PutObject action" in result.stderr
    with pytest.raises(ClientError) as missing:
        moto_server.client("s3").head_object(Bucket=ALLOWED, Key="new.txt")
    assert missing.value.response["Error"]["Code"] == "404"


def test_moto_alone_would_let_the_same_session_write(moto_server, seed):
    """Control: moto ignores session policies, so the gate is what denies the write above."""
    try:
        client("s3", moto_server.endpoint, seed).put_object(Bucket=ALLOWED, Key="past-the-gate.txt", Body=b"x")
    finally:
        moto_server.client("s3").delete_object(Bucket=ALLOWED, Key="past-the-gate.txt")


def test_list_objects_on_the_allowed_bucket_works(gate, seed, tmp_path):
    result = aws_cli(gate.url, seed, "s3api", "list-objects-v2", "--bucket", ALLOWED, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [o["Key"] for o in json.loads(result.stdout)["Contents"]] == ["report.txt"]


def test_list_objects_on_another_bucket_is_denied(gate, seed, tmp_path):
    result = aws_cli(gate.url, seed, "s3api", "list-objects-v2", "--bucket", OTHER, home=tmp_path)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert f'on resource: "arn:aws:s3:::{OTHER}" with an explicit deny in a session policy' in result.stderr


def test_same_request_from_outside_the_allowed_range_is_denied(gate, seed):
    inside_status, inside_body = signed_request(gate.url, seed, "s3", "GET", f"/{ALLOWED}?list-type=2")
    assert inside_status == 200 and "<Key>report.txt</Key>" in inside_body
    status, body = signed_request(gate.url, seed, "s3", "GET", f"/{ALLOWED}?list-type=2",
                                  source_address=OUTSIDE_ADDRESS)
    assert status == 403
    assert "<Code>AccessDenied</Code>" in body and "explicit deny in a session policy" in body
    assert "report.txt" not in body


def test_get_caller_identity_is_always_allowed(gate, moto_server, seed):
    """AWS answers GetCallerIdentity even under an explicit deny; here the NotIpAddress deny matches."""
    status, body = signed_request(gate.url, seed, "sts", "POST", "/", body=b"Action=GetCallerIdentity&Version=2011-06-15",
                                  source_address=OUTSIDE_ADDRESS,
                                  headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert status == 200
    assert f"arn:aws:sts::{moto_server.account}:assumed-role/{ROLE_NAME}/host1" in body


def test_session_without_session_policies_keeps_the_role_permissions(gate, moto_server, role_arn, seed):
    credentials = client("sts", gate.url, admin_keys(moto_server)).assume_role(
        RoleArn=role_arn, RoleSessionName="unrestricted")["Credentials"]
    client("s3", gate.url, credentials).put_object(Bucket=OTHER, Key="full-access.txt", Body=b"ok")
    assert moto_server.client("s3").get_object(Bucket=OTHER, Key="full-access.txt")["Body"].read() == b"ok"


def test_policy_variables_use_session_tags(gate, moto_server, role_arn):
    """A session policy scoped with ${aws:PrincipalTag/x509Subject/CN} lets host1 write only under host1/."""
    scoped = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{OTHER}/${{aws:PrincipalTag/x509Subject/CN}}/*"}]}
    credentials = client("sts", gate.url, admin_keys(moto_server)).assume_role(
        RoleArn=role_arn, RoleSessionName="host1-scoped", Policy=json.dumps(scoped),
        Tags=[{"Key": "x509Subject/CN", "Value": "host1"}])["Credentials"]
    s3 = client("s3", gate.url, credentials)
    s3.put_object(Bucket=OTHER, Key="host1/state.json", Body=b"{}")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=OTHER, Key="host2/state.json", Body=b"{}")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_role_policy_changes_apply_to_live_sessions(gate, moto_server, role_arn, seed):
    iam = moto_server.client("iam")
    deny_get = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}
    s3 = client("s3", gate.url, seed)
    assert s3.get_object(Bucket=ALLOWED, Key="report.txt")["Body"].read() == b"fleet data"
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="no-reads", PolicyDocument=json.dumps(deny_get))
    try:
        with pytest.raises(ClientError) as denied:
            s3.get_object(Bucket=ALLOWED, Key="report.txt")
        assert "with an explicit deny in an identity-based policy" in denied.value.response["Error"]["Message"]
    finally:
        iam.delete_role_policy(RoleName=ROLE_NAME, PolicyName="no-reads")


def test_credentials_assumed_past_the_gate_fail_closed(gate, moto_server, role_arn):
    credentials = client("sts", moto_server.endpoint, admin_keys(moto_server)).assume_role(
        RoleArn=role_arn, RoleSessionName="bypass")["Credentials"]
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, credentials).list_buckets()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "not issued by an AssumeRole that passed through this gate" in denied.value.response["Error"]["Message"]


def test_a_wrong_session_token_is_rejected(gate, seed):
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, {**seed, "SessionToken": "forged"}).list_buckets()
    assert denied.value.response["Error"]["Code"] == "InvalidToken"


def test_moto_still_checks_signatures_behind_the_gate(gate, moto_server):
    """Forwarding keeps the Host header, so valid signatures verify and a wrong secret is still refused."""
    with pytest.raises(ClientError) as rejected:
        client("s3", gate.url, {**admin_keys(moto_server), "SecretAccessKey": "not-the-secret"}).list_buckets()
    assert rejected.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_unmapped_operations_of_sessions_fail_closed(gate, seed):
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, seed).delete_objects(Bucket=ALLOWED, Delete={"Objects": [{"Key": "report.txt"}]})
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "cannot map this request to IAM actions" in denied.value.response["Error"]["Message"]


def test_other_credentials_and_large_bodies_pass_through_unchanged(gate, moto_server, role_arn):
    payload = os.urandom(6 * 1024 * 1024 + 17)
    admin = client("s3", gate.url, admin_keys(moto_server))
    admin.put_object(Bucket=OTHER, Key="large.bin", Body=payload)
    stored = moto_server.client("s3").get_object(Bucket=OTHER, Key="large.bin")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(payload).digest()
    assert admin.get_object(Bucket=OTHER, Key="large.bin")["Body"].read() == payload
    assert admin.head_object(Bucket=OTHER, Key="large.bin")["ContentLength"] == len(payload)


def test_the_gate_logs_each_decision(gate, seed):
    s3 = client("s3", gate.url, seed)
    s3.list_buckets()
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=OTHER)
    log = Path(gate.log_path).read_text()
    assert f"DENY s3:ListBucket arn:aws:s3:::{OTHER}" in log
    assert "ALLOW s3:ListAllMyBuckets" in log


def mint_with_web_identity(gate, moto_server, role_arn, policy, context_header):
    """AssumeRoleWithWebIdentity as ra_local sends it (signed by an IAM user), with the session-context header."""
    form = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role_arn,
            "RoleSessionName": "host1-web", "WebIdentityToken": "ra-local", "Policy": json.dumps(policy)}
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "X-Aws-Gate-Session-Context": context_header}
    return signed_request(gate.url, admin_keys(moto_server), "sts", "POST", "/", body=urlencode(form).encode(),
                          headers=headers)


def test_web_identity_minting_takes_tags_and_source_identity_from_the_context_header(gate, moto_server, role_arn):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{OTHER}/${{aws:PrincipalTag/x509Subject/CN}}/*",
        "Condition": {"StringEquals": {"aws:SourceIdentity": "host1.example.test"}}}]}
    context = {"tags": {"x509Subject/CN": "web-host1"}, "sourceIdentity": "host1.example.test"}
    status, body = mint_with_web_identity(gate, moto_server, role_arn, policy, json.dumps(context))
    assert status == 200, body
    root = ElementTree.fromstring(body)
    credentials = {name: next(e.text for e in root.iter() if e.tag.endswith("}" + name))
                   for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
    s3 = client("s3", gate.url, credentials)
    s3.put_object(Bucket=OTHER, Key="web-host1/state.json", Body=b"{}")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=OTHER, Key="web-host2/state.json", Body=b"{}")
    assert "no session policy allows the s3:PutObject action" in denied.value.response["Error"]["Message"]


def test_a_malformed_session_context_header_is_refused(gate, moto_server, role_arn):
    status, body = mint_with_web_identity(gate, moto_server, role_arn, SEED_SESSION_POLICY, "{not json")
    assert status == 400
    assert "<Code>InvalidParameterValue</Code>" in body and "X-Aws-Gate-Session-Context must be JSON" in body


def test_an_unreachable_upstream_is_named_in_the_answer(moto_server, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with running_gate(dead, tmp_path / "gate.log") as lonely_gate:
        status, body = signed_request(lonely_gate.url, admin_keys(moto_server), "s3", "GET", "/")
    assert status == 503 and "<Code>ServiceUnavailable</Code>" in body
    assert f"cannot reach its upstream {dead[7:]}" in body


@pytest.mark.parametrize("args, problem", [
    (["--host", "0.0.0.0", "--upstream", "http://127.0.0.1:1"], "--host must be a specific address"),
    (["--upstream", "https://127.0.0.1:1"], "--upstream must be http://HOST:PORT"),
])
def test_bad_command_lines_are_refused_with_the_fix(args, problem):
    result = subprocess.run([sys.executable, "-m", "aws_gate", *args], capture_output=True, text=True, timeout=30,
                            cwd=REPO)
    assert result.returncode == 2 and problem in result.stderr
