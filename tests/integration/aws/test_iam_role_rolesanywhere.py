"""iam_role_rolesanywhere against moto IAM: check mode -> apply -> idempotence -> update (diff) -> delete."""

import pytest

from tests.support.ansible import run_module

ANCHOR = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0d2ad5d5-2b0a-4a4c-9f0e-6f7a7b6bb001"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def role_args(conn, **extra):
    args = dict(conn, name="awsside-innovation", trust_anchor_arns=[ANCHOR], x509_subject={"OU": "Innovation"},
                managed_policy_arns=[S3_FULL], tags={"owner": "platform"})
    args.update(extra)
    return args


def test_role_lifecycle(iam_conn, boto):
    iam = boto("iam")
    args = role_args(iam_conn)

    checked = run_module("iam_role_rolesanywhere", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert checked["diff"]["before"] == {}
    assert checked["role"]["arn"] == "arn:aws:iam::123456789012:role/awsside-innovation"
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="awsside-innovation")

    applied = run_module("iam_role_rolesanywhere", args, diff=True)
    assert applied.changed and not applied.failed, applied
    trust = iam.get_role(RoleName="awsside-innovation")["Role"]["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Service": "rolesanywhere.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": ANCHOR},
        "StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Innovation"},
    }
    attached = iam.list_attached_role_policies(RoleName="awsside-innovation")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [S3_FULL]
    assert applied["role"] == checked["role"]  # check mode predicted exactly what apply did

    again = run_module("iam_role_rolesanywhere", args, diff=True)
    assert not again.changed and not again.failed, again
    assert again["diff"]["before"] == again["diff"]["after"]

    updated = run_module(
        "iam_role_rolesanywhere",
        role_args(iam_conn, x509_subject={"OU": "Research"}, managed_policy_arns=[S3_READ], tags={"owner": "sec"},
                  max_session_duration=7200),
        diff=True,
    )
    assert updated.changed, updated
    before, after = updated["diff"]["before"], updated["diff"]["after"]
    assert before["assume_role_policy_document"]["Statement"]["Condition"]["StringEquals"] == {
        "aws:PrincipalTag/x509Subject/OU": "Innovation"}
    assert after["assume_role_policy_document"]["Statement"]["Condition"]["StringEquals"] == {
        "aws:PrincipalTag/x509Subject/OU": "Research"}
    assert (before["managed_policy_arns"], after["managed_policy_arns"]) == ([S3_FULL], [S3_READ])
    role = iam.get_role(RoleName="awsside-innovation")["Role"]
    assert role["MaxSessionDuration"] == 7200
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="awsside-innovation")["Tags"]} == {"owner": "sec"}

    delete_args = dict(iam_conn, name="awsside-innovation", state="absent")
    check_delete = run_module("iam_role_rolesanywhere", delete_args, check_mode=True)
    assert check_delete.changed
    iam.get_role(RoleName="awsside-innovation")  # still there after check mode
    deleted = run_module("iam_role_rolesanywhere", delete_args, diff=True)
    assert deleted.changed and deleted["diff"]["after"] == {}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="awsside-innovation")
    assert not run_module("iam_role_rolesanywhere", delete_args).changed


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"managed_policy_arns": ["arn:aws:iam::aws:policy/NoSuchPolicy"]}, "does not exist"),
        ({"max_session_duration": 60}, "out of range"),
        ({"extra_conditions": {"StringLike": "web*"}}, "must be a dict"),
    ],
)
def test_role_bad_input_changes_nothing(iam_conn, boto, extra, expected):
    result = run_module("iam_role_rolesanywhere", role_args(iam_conn, name="awsside-bad", **extra))
    assert result.failed and expected in result["msg"], result
    names = [r["RoleName"] for r in boto("iam").list_roles()["Roles"]]
    assert "awsside-bad" not in names
