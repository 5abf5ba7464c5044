"""What aws_setup.yml's profile does to a session, as AWS would decide it: ra_local mints through aws_gate,
which evaluates the profile's session policies (moto alone ignores them; see docs/aws-gate.md).

The seed: the role has AmazonS3FullAccess; the profile narrows it to AmazonS3ReadOnlyAccess, one bucket and
the allowed networks. So listing buckets and reading the allowed bucket work; writing, reading another
bucket, and any request from another source address are denied.
"""
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from aws_gate.process import running_gate
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509
from tests.aws_gate.clients import client, signed_request
from tests.support.ansible import REPO, run_playbook
from tests.support.aws import start_ra_local
from tests.support.ca import issue_client_cert

ALLOWED, OTHER = "awsside-fleet-data", "awsside-other-data"


@pytest.fixture(scope="module")
def gate(moto_server, tmp_path_factory):
    admin = moto_server.admin
    env = {"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
           "AWS_DEFAULT_REGION": moto_server.region}
    with running_gate(moto_server.endpoint, tmp_path_factory.mktemp("gate") / "aws_gate.log", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def ra_via_gate(moto_server, gate, tmp_path_factory):
    host, port = gate.url.rsplit("//", 1)[1].rsplit(":", 1)
    endpoint = start_ra_local(dataclasses.replace(moto_server, host=host, port=int(port)),
                              tmp_path_factory.mktemp("ra_local_via_gate"))
    yield endpoint
    endpoint.stop()


@pytest.mark.slow
def test_seed_session_is_read_only_one_bucket_allowed_networks(moto_server, gate, ra_via_gate, file_ca, tmp_path):
    s3_admin = moto_server.client("s3")
    for bucket in (ALLOWED, OTHER):
        s3_admin.create_bucket(Bucket=bucket)
        s3_admin.put_object(Bucket=bucket, Key="inventory.txt", Body=b"fleet")
    output = tmp_path / "arns.json"
    # Credentials as role variables this time (the other playbook test gives them in the environment).
    run_playbook(REPO / "playbooks" / "aws_setup.yml", extra_vars={
        "aws_setup_access_key": moto_server.admin.access_key_id,
        "aws_setup_secret_key": moto_server.admin.secret_access_key,
        "aws_setup_name": "awssidegate", "aws_setup_endpoint_url": ra_via_gate.url,
        "aws_setup_aws_endpoint_url": moto_server.endpoint, "aws_setup_ca_bundle": file_ca.pem(),
        "aws_setup_allowed_bucket": ALLOWED, "aws_setup_allowed_source_ips": ["127.0.0.1/32"],
        "aws_setup_output_file": str(output),
    })
    arns = json.loads(output.read_text())

    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_client_cert(file_ca, key.public_key(), subject={"OU": "Innovation", "CN": "host1"}, record=False)
    session = _sigv4x509.create_session(key, cert, trust_anchor_arn=arns["trust_anchor_arn"], profile_arn=arns["profile_arn"],
                                        role_arn=arns["role_arn"], endpoint=ra_via_gate.url, duration_seconds=900)
    credentials = {"accessKeyId": session.access_key_id, "secretAccessKey": session.secret_access_key,
                   "sessionToken": session.session_token}
    s3 = client("s3", gate.url, credentials)

    assert ALLOWED in [b["Name"] for b in s3.list_buckets()["Buckets"]]           # aws s3 ls
    assert s3.get_object(Bucket=ALLOWED, Key="inventory.txt")["Body"].read() == b"fleet"
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):          # read-only session policy
        s3.put_object(Bucket=ALLOWED, Key="new.txt", Body=b"x")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):          # NotResource: other bucket
        s3.list_objects_v2(Bucket=OTHER)
    status, body = signed_request(gate.url, credentials, "s3", "GET", f"/{ALLOWED}?list-type=2",
                                  source_address="127.0.0.2")                    # NotIpAddress
    assert status == 403 and "AccessDenied" in body
    status, _ = signed_request(gate.url, credentials, "s3", "GET", f"/{ALLOWED}?list-type=2")
    assert status == 200
