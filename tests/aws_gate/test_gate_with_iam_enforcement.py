"""The gate in front of a moto server that enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT).

Only then does moto verify SigV4 signatures: these tests show that requests forwarded by the gate
(with their original Host header) still verify, that a tampered signature is still rejected by moto,
and that the gate reads the role's policies with the IAM user credentials it is given.
"""
import json

import boto3
import pytest
from botocore.exceptions import ClientError

from aws_gate.process import running_gate
from tests.aws_gate.conftest import running_moto

ACCOUNT = "123456789012"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:user/fleet-admin"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fleet-enforced"


def client(service, endpoint, access_key, secret_key, token=None):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, aws_session_token=token)


@pytest.fixture(scope="module")
def enforced(tmp_path_factory):
    """(moto url, gate, admin keys, session credentials): the first 3 moto requests create the admin."""
    directory = tmp_path_factory.mktemp("enforced")
    with running_moto(directory / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="3") as moto_url:
        bootstrap = client("iam", moto_url, "testing", "testing")
        bootstrap.create_user(UserName="fleet-admin")
        bootstrap.put_user_policy(UserName="fleet-admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = bootstrap.create_access_key(UserName="fleet-admin")["AccessKey"]
        admin = (key["AccessKeyId"], key["SecretAccessKey"])
        iam = client("iam", moto_url, *admin)
        iam.create_role(RoleName="fleet-enforced", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ADMIN_ARN}, "Action": "sts:AssumeRole"}]}))
        iam.attach_role_policy(RoleName="fleet-enforced", PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
        client("s3", moto_url, *admin).create_bucket(Bucket="enforced")
        gate_env = {"AWS_ACCESS_KEY_ID": admin[0], "AWS_SECRET_ACCESS_KEY": admin[1]}
        with running_gate(moto_url, directory / "aws_gate.log", env=gate_env) as gate:
            credentials = client("sts", gate.url, *admin).assume_role(
                RoleArn=ROLE_ARN, RoleSessionName="host1",
                PolicyArns=[{"arn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}])["Credentials"]
            yield moto_url, gate, admin, credentials


def session_client(service, endpoint, credentials):
    return client(service, endpoint, credentials["AccessKeyId"], credentials["SecretAccessKey"],
                  credentials["SessionToken"])


def test_allowed_session_requests_pass_moto_signature_check(enforced):
    _, gate, _, credentials = enforced
    assert "enforced" in [b["Name"] for b in session_client("s3", gate.url, credentials).list_buckets()["Buckets"]]
    identity = session_client("sts", gate.url, credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/fleet-enforced/host1"


def test_session_policy_is_enforced_in_front_of_moto(enforced):
    _, gate, _, credentials = enforced
    with pytest.raises(ClientError) as denied:
        session_client("s3", gate.url, credentials).put_object(Bucket="enforced", Key="k", Body=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "no session policy allows the s3:PutObject action" in denied.value.response["Error"]["Message"]


def test_moto_still_rejects_a_wrong_signature_through_the_gate(enforced):
    _, gate, admin, _ = enforced
    with pytest.raises(ClientError) as rejected:
        client("s3", gate.url, admin[0], "not-the-secret").list_buckets()
    assert rejected.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_iam_user_requests_pass_through_to_moto_authorisation(enforced):
    _, gate, admin, _ = enforced
    client("s3", gate.url, *admin).put_object(Bucket="enforced", Key="by-admin", Body=b"ok")
    assert client("s3", gate.url, *admin).get_object(Bucket="enforced", Key="by-admin")["Body"].read() == b"ok"
