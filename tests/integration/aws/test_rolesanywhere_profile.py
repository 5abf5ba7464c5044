"""rolesanywhere_profile against ra_local + moto IAM: check mode -> apply -> idempotence -> update (diff) -> delete."""
import json

import pytest

from tests.support.ansible import run_module

S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
DENY_OTHER_BUCKETS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "*", "NotResource": ["arn:aws:s3:::fleet-data", "arn:aws:s3:::fleet-data/*"]}],
}


@pytest.fixture(scope="module")
def role_arn(boto):
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                                                      "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]}
    return boto("iam").create_role(RoleName="awsside-profile-test-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def profiles_named(boto, name):
    return [p for p in boto("rolesanywhere").list_profiles()["profiles"] if p["name"] == name]


def test_profile_lifecycle(ra_conn, boto, role_arn):
    args = dict(ra_conn, name="awsside-profile", role_arns=[role_arn], managed_policy_arns=[S3_READ],
                session_policy=json.dumps(DENY_OTHER_BUCKETS), duration_seconds=3600, tags={"env": "test"})

    checked = run_module("rolesanywhere_profile", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert profiles_named(boto, "awsside-profile") == []

    applied = run_module("rolesanywhere_profile", args, diff=True)
    assert applied.changed and not applied.failed, applied
    [profile] = profiles_named(boto, "awsside-profile")
    assert profile["enabled"] and profile["roleArns"] == [role_arn] and profile["managedPolicyArns"] == [S3_READ]
    assert json.loads(profile["sessionPolicy"]) == DENY_OTHER_BUCKETS
    assert profile["requireInstanceProperties"] is False and profile["durationSeconds"] == 3600
    strip = lambda view: {k: v for k, v in view.items() if k not in ("profile_arn", "profile_id")}  # noqa: E731
    assert strip(checked["profile"]) == strip(applied["profile"])

    # The same policy as a YAML dict, in another key order, is the same policy.
    reordered = dict(args, session_policy={"Statement": DENY_OTHER_BUCKETS["Statement"], "Version": "2012-10-17"})
    again = run_module("rolesanywhere_profile", reordered, diff=True)
    assert not again.changed and not again.failed, again

    allow_ip = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.213.0.0/24"]}}}]}
    update = dict(args, session_policy=allow_ip, duration_seconds=7200, managed_policy_arns=[],
                  accept_role_session_name=True, enabled=False)
    updated = run_module("rolesanywhere_profile", update, diff=True)
    assert updated.changed and not updated.failed, updated
    before, after = updated["diff"]["before"], updated["diff"]["after"]
    assert (before["duration_seconds"], after["duration_seconds"]) == (3600, 7200)
    assert (before["managed_policy_arns"], after["managed_policy_arns"]) == ([S3_READ], [])
    assert "NotIpAddress" in json.dumps(after["session_policy"]) and "NotIpAddress" not in json.dumps(before["session_policy"])
    [profile] = profiles_named(boto, "awsside-profile")
    assert profile["durationSeconds"] == 7200 and not profile["enabled"] and profile["acceptRoleSessionName"]
    assert not run_module("rolesanywhere_profile", update).changed

    changing_rip = run_module("rolesanywhere_profile", dict(update, require_instance_properties=True))
    assert changing_rip.failed and "cannot be changed" in changing_rip["msg"], changing_rip

    absent = dict(ra_conn, name="awsside-profile", state="absent")
    assert run_module("rolesanywhere_profile", absent, check_mode=True).changed
    assert len(profiles_named(boto, "awsside-profile")) == 1
    assert run_module("rolesanywhere_profile", absent).changed
    assert profiles_named(boto, "awsside-profile") == []
    assert not run_module("rolesanywhere_profile", absent).changed


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"session_policy": '{"Version": "2012-10-17", "Statement": [}'}, "session_policy is not valid JSON"),
        ({"session_policy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*"}]}'},
         "needs Effect Allow or Deny"),
        ({"role_arns": ["arn:aws:iam::123456789012:role/no-such-role"]}, "is not an IAM role of this account"),
        ({"role_arns": ["arn:aws:iam::999999999999:role/awsside-profile-test-role"]}, "the role of that name is"),
        ({"role_arns": ["awsside-profile-test-role"]}, "is not a role ARN"),
        ({"managed_policy_arns": ["arn:aws:iam::aws:policy/NoSuchPolicy"]}, "does not exist"),
        ({"duration_seconds": 899}, "out of range"),
        ({"duration_seconds": 43201}, "out of range"),
    ],
)
def test_bad_input_changes_nothing(ra_conn, boto, role_arn, extra, expected):
    args = dict(ra_conn, name="awsside-bad-profile", role_arns=[role_arn])
    args.update(extra)
    for check_mode in (True, False):
        result = run_module("rolesanywhere_profile", args, check_mode=check_mode)
        assert result.failed and expected in result["msg"], result
    assert profiles_named(boto, "awsside-bad-profile") == []
