"""The seed's narrowing end to end: moto server, aws_gate in front, a role session with session policies.

The role has AmazonS3FullAccess; the session gets AmazonS3ReadOnlyAccess plus the seed's inline deny
(every bucket but one, and any address outside the fleet's range). Clients are the real aws CLI and
raw SigV4-signed HTTP requests sent from a second loopback address.
"""
import hashlib
import http.client
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.aws_gate.conftest import AWS_ENV, REPO

ACCOUNT = "123456789012"
ROLE_NAME = "fleet-s3"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
ALLOWED, OTHER = "fleet-allowed", "fleet-other"
ALLOWED_RANGE = "127.0.0.1/32"  # the gate sees clients on 127.0.0.1; 127.0.0.2 stands for another host
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
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                   "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}],
}


def client(service, endpoint, credentials=None):
    keys = credentials or {"AccessKeyId": AWS_ENV["AWS_ACCESS_KEY_ID"], "SecretAccessKey": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                        aws_session_token=keys.get("SessionToken"))


@pytest.fixture(scope="module")
def seed(gate, gate_moto_url):
    """Buckets, the role, and a session assumed through the gate as ra_local would assume it."""
    admin_s3 = client("s3", gate_moto_url)
    for bucket in (ALLOWED, OTHER):
        admin_s3.create_bucket(Bucket=bucket)
        admin_s3.put_object(Bucket=bucket, Key="report.txt", Body=b"fleet data")
    iam = client("iam", gate_moto_url)
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
    iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    credentials = client("sts", gate.url).assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="host1", DurationSeconds=900,
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}],
        Policy=json.dumps(SEED_SESSION_POLICY),
        Tags=[{"Key": "x509Subject/CN", "Value": "host1"}],
    )["Credentials"]
    return credentials


def aws_cli(gate, credentials, *args, tmp_path):
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"], "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run([str(REPO / ".venv/bin/aws"), "--endpoint-url", gate.url, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def signed_request(gate, credentials, service, method, path, body=b"", source_address="127.0.0.1", headers=None):
    """Send one SigV4-signed request from ``source_address`` (a bound client socket)."""
    url = f"{gate.url}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials.get("SessionToken")),
           service, "us-east-1").add_auth(request)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(source_address, 0))
    try:
        connection.request(method, path, body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_s3_ls_works(gate, seed, tmp_path):
    result = aws_cli(gate, seed, "s3", "ls", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ALLOWED in result.stdout and OTHER in result.stdout


def test_put_object_is_denied_by_the_read_only_session_policy(gate, gate_moto_url, seed, tmp_path):
    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"must not arrive")
    result = aws_cli(gate, seed, "s3api", "put-object", "--bucket", ALLOWED, "--key", "new.txt",
                     "--body", str(upload), tmp_path=tmp_path)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert "because no session policy allows the s3:PutObject action" in result.stderr
    with pytest.raises(ClientError) as missing:
        client("s3", gate_moto_url).head_object(Bucket=ALLOWED, Key="new.txt")
    assert missing.value.response["Error"]["Code"] == "404"


def test_moto_alone_would_let_the_same_session_write(gate_moto_url, seed):
    """Control: without the gate moto ignores session policies, so the gate is what denies above."""
    try:
        client("s3", gate_moto_url, seed).put_object(Bucket=ALLOWED, Key="written-past-the-gate.txt", Body=b"x")
    finally:
        client("s3", gate_moto_url).delete_object(Bucket=ALLOWED, Key="written-past-the-gate.txt")


def test_list_objects_on_the_allowed_bucket_works(gate, seed, tmp_path):
    result = aws_cli(gate, seed, "s3api", "list-objects-v2", "--bucket", ALLOWED, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [o["Key"] for o in json.loads(result.stdout)["Contents"]] == ["report.txt"]


def test_list_objects_on_another_bucket_is_denied(gate, seed, tmp_path):
    result = aws_cli(gate, seed, "s3api", "list-objects-v2", "--bucket", OTHER, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert f'on resource: "arn:aws:s3:::{OTHER}" with an explicit deny in a session policy' in result.stderr


def test_same_request_from_outside_the_allowed_range_is_denied(gate, seed):
    inside_status, inside_body = signed_request(gate, seed, "s3", "GET", f"/{ALLOWED}?list-type=2")
    assert inside_status == 200 and "<Key>report.txt</Key>" in inside_body
    status, body = signed_request(gate, seed, "s3", "GET", f"/{ALLOWED}?list-type=2", source_address=OUTSIDE_ADDRESS)
    assert status == 403
    assert "<Code>AccessDenied</Code>" in body and "explicit deny in a session policy" in body
    assert "report.txt" not in body


def test_get_caller_identity_is_always_allowed(gate, seed):
    """AWS allows GetCallerIdentity even under an explicit deny; here the NotIpAddress deny matches."""
    status, body = signed_request(gate, seed, "sts", "POST", "/", body=b"Action=GetCallerIdentity&Version=2011-06-15",
                                  source_address=OUTSIDE_ADDRESS,
                                  headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert status == 200
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/host1" in body


def test_session_without_session_policies_keeps_the_role_permissions(gate, gate_moto_url, seed):
    credentials = client("sts", gate.url).assume_role(RoleArn=ROLE_ARN, RoleSessionName="unrestricted")["Credentials"]
    client("s3", gate.url, credentials).put_object(Bucket=OTHER, Key="full-access.txt", Body=b"ok")
    assert client("s3", gate_moto_url).get_object(Bucket=OTHER, Key="full-access.txt")["Body"].read() == b"ok"


def test_policy_path_variables_and_session_tags(gate, gate_moto_url, seed):
    """A session policy scoped with ${aws:PrincipalTag/x509Subject/CN} lets host1 write only under host1/."""
    scoped = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{OTHER}/${{aws:PrincipalTag/x509Subject/CN}}/*"}]}
    credentials = client("sts", gate.url).assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="host1-scoped", Policy=json.dumps(scoped),
        Tags=[{"Key": "x509Subject/CN", "Value": "host1"}])["Credentials"]
    s3 = client("s3", gate.url, credentials)
    s3.put_object(Bucket=OTHER, Key="host1/state.json", Body=b"{}")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=OTHER, Key="host2/state.json", Body=b"{}")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_credentials_assumed_past_the_gate_fail_closed(gate, gate_moto_url, seed):
    credentials = client("sts", gate_moto_url).assume_role(RoleArn=ROLE_ARN, RoleSessionName="bypass")["Credentials"]
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, credentials).list_buckets()
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "not issued by an AssumeRole that passed through this gate" in denied.value.response["Error"]["Message"]


def test_a_wrong_session_token_is_rejected(gate, seed):
    forged = {**seed, "SessionToken": "forged"}
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, forged).list_buckets()
    assert denied.value.response["Error"]["Code"] == "InvalidToken"


def test_unmapped_operations_of_sessions_fail_closed(gate, seed):
    with pytest.raises(ClientError) as denied:
        client("s3", gate.url, seed).delete_objects(Bucket=ALLOWED, Delete={"Objects": [{"Key": "report.txt"}]})
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "cannot map this request to IAM actions" in denied.value.response["Error"]["Message"]


def test_other_credentials_and_large_bodies_pass_through_unchanged(gate, gate_moto_url):
    payload = os.urandom(6 * 1024 * 1024 + 17)
    admin = client("s3", gate.url)
    admin.put_object(Bucket=OTHER, Key="large.bin", Body=payload)
    stored = client("s3", gate_moto_url).get_object(Bucket=OTHER, Key="large.bin")["Body"].read()
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
