"""Minting through aws_gate: the session tags and source identity ra_local derives from the certificate
reach the enforcing layer (X-Aws-Gate-Session-Context), so role policies conditioned on them hold."""
import dataclasses

import pytest

from aws_gate.process import running_gate
from tests.ra_local.client import create_session
from tests.ra_local.pki import CA
from tests.support.aws import provision, start_ra_local

TAGGED_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*",
    "Condition": {"StringEquals": {"aws:PrincipalTag/x509Subject/CN": "tagged.example.test",
                                   "aws:SourceIdentity": "tagged.example.test"}},
}]}


@pytest.fixture(scope="module")
def gated(moto_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ra_gate")
    admin = moto_server.admin
    env = {"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key}
    with running_gate(moto_server.endpoint, workdir / "gate.log", env=env) as gate:
        host, port = gate.url.rsplit("//", 1)[1].rsplit(":", 1)
        endpoint = start_ra_local(dataclasses.replace(moto_server, host=host, port=int(port)), workdir)
        try:
            yield gate, endpoint
        finally:
            endpoint.stop()


@pytest.mark.parametrize("cn, allowed", [("tagged.example.test", True), ("other.example.test", False)])
def test_certificate_tags_decide_role_permissions(gated, cn, allowed):
    gate, endpoint = gated
    ca = CA(f"gate CA {cn}")
    arns = provision(endpoint, ca.pem, role_policy=TAGGED_ONLY)
    status, document = create_session(endpoint, *ca.issue(cn=cn), arns)
    assert status == 201, document
    credentials = document["credentialSet"][0]["credentials"]
    s3 = endpoint.moto.client("s3", keys={"aws_access_key_id": credentials["accessKeyId"],
                                          "aws_secret_access_key": credentials["secretAccessKey"],
                                          "aws_session_token": credentials["sessionToken"]},
                              endpoint_url=gate.url)
    if allowed:
        assert "Buckets" in s3.list_buckets()
    else:
        with pytest.raises(s3.exceptions.ClientError) as denied:
            s3.list_buckets()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
