"""The seed end to end: a certificate → ra_local CreateSession (minting through the gate) → S3 through the gate.

ra_local runs with ``--aws-endpoint`` = the gate, so its STS call passes the gate, which learns the
profile's session policies. The role has AmazonS3FullAccess; the profile narrows it with
AmazonS3ReadOnlyAccess and the seed's inline deny. The quickstart's proof follows with the aws CLI.
"""
import json

import pytest
from botocore.exceptions import ClientError

from tests.aws_gate.clients import aws_cli, client, signed_request
from tests.ra_local.client import create_session
from tests.ra_local.pki import CA
from tests.support.aws import provision

ALLOWED, OTHER = "seed-fleet-bucket", "seed-other-bucket"
SEED_SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "OnlyTheFleetBucket", "Effect": "Deny", "NotAction": "s3:ListAllMyBuckets",
         "NotResource": [f"arn:aws:s3:::{ALLOWED}", f"arn:aws:s3:::{ALLOWED}/*"]},
        {"Sid": "OnlyFromTheFleetNetwork", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.1/32"]}}},
    ],
}


@pytest.fixture(scope="module")
def host_credentials(ra_through_gate, moto_server):
    for bucket in (ALLOWED, OTHER):
        moto_server.client("s3").create_bucket(Bucket=bucket)
        moto_server.client("s3").put_object(Bucket=bucket, Key="inventory.txt", Body=b"fleet")
    ca = CA("seed CA")
    arns = provision(ra_through_gate, ca.pem, conditions={"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"}},
                     managedPolicyArns=["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
                     sessionPolicy=json.dumps(SEED_SESSION_POLICY))
    moto_server.client("iam").attach_role_policy(RoleName=arns["role_name"],
                                                 PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    cert, key = ca.issue(cn="host1.example.test", ou="Fleet")
    status, document = create_session(ra_through_gate, cert, key, arns, duration=900)
    assert status == 201, document
    return document["credentialSet"][0]["credentials"]


def test_s3_ls_works(gate, host_credentials, tmp_path):
    result = aws_cli(gate.url, host_credentials, "s3", "ls", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ALLOWED in result.stdout


def test_put_object_is_denied(gate, host_credentials, tmp_path):
    (tmp_path / "f").write_text("x")
    result = aws_cli(gate.url, host_credentials, "s3api", "put-object", "--bucket", ALLOWED, "--key", "f",
                     "--body", str(tmp_path / "f"), home=tmp_path)
    assert result.returncode != 0 and "AccessDenied" in result.stderr
    assert "no session policy allows the s3:PutObject action" in result.stderr


def test_list_objects_on_another_bucket_is_denied(gate, host_credentials, tmp_path):
    allowed = aws_cli(gate.url, host_credentials, "s3api", "list-objects-v2", "--bucket", ALLOWED, home=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    other = aws_cli(gate.url, host_credentials, "s3api", "list-objects-v2", "--bucket", OTHER, home=tmp_path)
    assert other.returncode != 0 and "explicit deny in a session policy" in other.stderr


def test_same_request_from_another_address_is_denied(gate, host_credentials):
    status, body = signed_request(gate.url, host_credentials, "s3", "GET", f"/{ALLOWED}?list-type=2",
                                  source_address="127.0.0.2")
    assert status == 403 and "<Code>AccessDenied</Code>" in body


def test_certificate_attributes_reach_policies_as_session_tags(ra_through_gate, moto_server, gate, host_credentials):  # noqa: ARG001 (buckets)
    """ra_local passes the certificate's tags to the gate: ${aws:PrincipalTag/x509Subject/CN} scopes writes."""
    per_host = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{OTHER}/${{aws:PrincipalTag/x509Subject/CN}}/*",
        "Condition": {"StringEquals": {"aws:SourceIdentity": "host7.example.test",
                                       "aws:PrincipalTag/x509Subject/OU": "Fleet"}}}]}
    ca = CA("per-host CA")
    arns = provision(ra_through_gate, ca.pem, sessionPolicy=json.dumps(per_host))
    moto_server.client("iam").attach_role_policy(RoleName=arns["role_name"],
                                                 PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    cert, key = ca.issue(cn="host7.example.test", ou="Fleet")
    status, document = create_session(ra_through_gate, cert, key, arns, duration=900)
    assert status == 201, document
    s3 = client("s3", gate.url, document["credentialSet"][0]["credentials"])
    s3.put_object(Bucket=OTHER, Key="host7.example.test/state.json", Body=b"{}")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=OTHER, Key="host8.example.test/state.json", Body=b"{}")
    assert "no session policy allows the s3:PutObject action" in denied.value.response["Error"]["Message"]
