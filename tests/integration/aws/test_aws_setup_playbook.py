"""playbooks/aws_setup.yml against ra_local + moto: check mode changes nothing, apply, rerun changed=0, and a
certificate of the own CA with OU=Innovation then gets credentials through the profile the playbook made."""
import json
import re

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509
from tests.support.ansible import REPO, run_playbook
from tests.support.ca import issue_client_cert

PLAYBOOK = REPO / "playbooks" / "aws_setup.yml"


def changed_count(proc):
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout)
    assert match, proc.stdout[-3000:]
    return int(match.group(1))


@pytest.fixture
def setup_vars(ra_endpoint, moto_server, file_ca, tmp_path):
    return {
        "aws_setup_name": "awssideseed",
        "aws_setup_region": moto_server.region,
        "aws_setup_endpoint_url": ra_endpoint.url,
        "aws_setup_aws_endpoint_url": moto_server.endpoint,
        "aws_setup_ca_bundle_path": str(file_ca.cert_path),
        "aws_setup_allowed_bucket": "fleet-data",
        "aws_setup_allowed_source_ips": ["127.0.0.0/8", "10.213.0.0/24"],
        "aws_setup_output_file": str(tmp_path / "aws_setup.json"),
        "aws_setup_tags": {"project": "fleet"},
    }


@pytest.fixture
def admin_env(moto_server):
    return {"AWS_ACCESS_KEY_ID": moto_server.admin.access_key_id,
            "AWS_SECRET_ACCESS_KEY": moto_server.admin.secret_access_key}


@pytest.mark.slow
def test_aws_setup_playbook(setup_vars, admin_env, boto, moto_server, ra_endpoint, file_ca, tmp_path):
    ra, iam = boto("rolesanywhere"), boto("iam")

    checked = run_playbook(PLAYBOOK, extra_vars=setup_vars, env=admin_env, args=["--check", "--diff"])
    assert changed_count(checked) >= 3
    assert "awssideseed-trust-anchor" not in [a["name"] for a in ra.list_trust_anchors()["trustAnchors"]]
    assert "awssideseed-rolesanywhere" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert "awssideseed-profile" not in [p["name"] for p in ra.list_profiles()["profiles"]]
    assert not (tmp_path / "aws_setup.json").exists()
    assert "NotIpAddress" in checked.stdout  # the diff shows the session policy that would be set

    applied = run_playbook(PLAYBOOK, extra_vars=setup_vars, env=admin_env)
    assert changed_count(applied) >= 4
    outputs = json.loads((tmp_path / "aws_setup.json").read_text())
    [anchor] = [a for a in ra.list_trust_anchors()["trustAnchors"] if a["name"] == "awssideseed-trust-anchor"]
    [profile] = [p for p in ra.list_profiles()["profiles"] if p["name"] == "awssideseed-profile"]
    role = iam.get_role(RoleName="awssideseed-rolesanywhere")["Role"]
    assert outputs == {"region": "us-east-1", "trust_anchor_arn": anchor["trustAnchorArn"],
                       "role_arn": role["Arn"], "profile_arn": profile["profileArn"]}

    condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert condition == {"ArnEquals": {"aws:SourceArn": anchor["trustAnchorArn"]},
                         "StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Innovation"}}
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="awssideseed-rolesanywhere")["AttachedPolicies"]]
    assert attached == ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]
    assert profile["managedPolicyArns"] == ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
    statements = {s["Sid"]: s for s in json.loads(profile["sessionPolicy"])["Statement"]}
    assert statements["DenyOutsideAllowedBucket"] == {
        "Sid": "DenyOutsideAllowedBucket", "Effect": "Deny", "NotAction": ["s3:ListAllMyBuckets"],
        "NotResource": ["arn:aws:s3:::fleet-data", "arn:aws:s3:::fleet-data/*"]}
    assert statements["DenyOutsideAllowedNetworks"]["Condition"] == {
        "NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.213.0.0/24"]}}
    assert anchor["enabled"] and profile["enabled"]
    assert {t["key"]: t["value"] for t in ra.list_tags_for_resource(resourceArn=profile["profileArn"])["tags"]} == {
        "project": "fleet"}

    rerun = run_playbook(PLAYBOOK, extra_vars=setup_vars, env=admin_env)
    assert changed_count(rerun) == 0, rerun.stdout[-3000:]
    check_rerun = run_playbook(PLAYBOOK, extra_vars=setup_vars, env=admin_env, args=["--check"])
    assert changed_count(check_rerun) == 0, check_rerun.stdout[-3000:]

    # Check mode shows a changed network list as one change, and leaves the profile as it is.
    moved = dict(setup_vars, aws_setup_allowed_source_ips=["192.0.2.0/24"])
    check_moved = run_playbook(PLAYBOOK, extra_vars=moved, env=admin_env, args=["--check", "--diff"])
    assert changed_count(check_moved) == 1 and "192.0.2.0/24" in check_moved.stdout, check_moved.stdout[-3000:]
    assert ra.get_profile(profileId=profile["profileId"])["profile"]["sessionPolicy"] == profile["sessionPolicy"]

    # What the setup is for: a host certificate of the own CA with OU=Innovation gets the role's credentials.
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_client_cert(file_ca, key.public_key(), subject={"OU": "Innovation", "CN": "host1"}, record=False)
    creds = _sigv4x509.create_session(key, cert, trust_anchor_arn=outputs["trust_anchor_arn"],
                                      profile_arn=outputs["profile_arn"], role_arn=outputs["role_arn"],
                                      endpoint=ra_endpoint.url, duration_seconds=900)
    sts = boto3.client("sts", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                       aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
                       aws_session_token=creds.session_token)
    assert sts.get_caller_identity()["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/awssideseed-rolesanywhere/")


@pytest.mark.slow
def test_aws_setup_with_private_ca(setup_vars, admin_env, boto, private_ca):
    pca_vars = dict(setup_vars, aws_setup_name="awssidepca", aws_setup_ca_bundle_path="", aws_setup_acm_pca_arn=private_ca[0],
                    aws_setup_output_file="")
    assert changed_count(run_playbook(PLAYBOOK, extra_vars=pca_vars, env=admin_env)) >= 3
    [anchor] = [a for a in boto("rolesanywhere").list_trust_anchors()["trustAnchors"] if a["name"] == "awssidepca-trust-anchor"]
    assert anchor["source"] == {"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": private_ca[0]}}
    assert changed_count(run_playbook(PLAYBOOK, extra_vars=pca_vars, env=admin_env)) == 0


def test_aws_setup_needs_one_trust_anchor_source(setup_vars, admin_env, boto):
    bad = dict(setup_vars, aws_setup_name="awssidenosource", aws_setup_ca_bundle_path="")
    proc = run_playbook(PLAYBOOK, extra_vars=bad, env=admin_env, check=False)
    assert proc.returncode != 0 and "Set exactly one of aws_setup_ca_bundle" in proc.stdout, proc.stdout[-2000:]
    assert "awssidenosource-trust-anchor" not in [a["name"] for a in boto("rolesanywhere").list_trust_anchors()["trustAnchors"]]
