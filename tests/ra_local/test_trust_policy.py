"""Trust-policy evaluation for the Roles Anywhere principal, operator by operator."""
import json

import pytest

from ra_local.trust_policy import evaluate

ANCHOR = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555"
CONTEXT = {"aws:PrincipalTag/x509Subject/CN": "web1.example.test", "aws:PrincipalTag/x509Subject/OU": "Fleet",
           "aws:SourceArn": ANCHOR}


def policy(condition=None, effect="Allow", actions=("sts:AssumeRole", "sts:TagSession"), principal=None, extra=()):
    statement = {"Effect": effect, "Principal": principal or {"Service": "rolesanywhere.amazonaws.com"},
                 "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement, *extra]})


@pytest.mark.parametrize("condition, allowed", [
    ({"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"}}, True),
    ({"StringEquals": {"aws:PrincipalTag/x509Subject/OU": ["Ops", "Fleet"]}}, True),
    ({"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Ops"}}, False),
    ({"StringEquals": {"aws:principaltag/x509subject/ou": "Fleet"}}, True),  # keys are case-insensitive
    ({"StringLike": {"aws:PrincipalTag/x509Subject/CN": "web?.example.*"}}, True),
    ({"StringNotLike": {"aws:PrincipalTag/x509Subject/CN": "web*"}}, False),
    ({"StringNotEquals": {"aws:PrincipalTag/x509Subject/O": "Evil"}}, True),  # absent key: negation holds
    ({"StringEquals": {"aws:PrincipalTag/x509Subject/O": "Corp"}}, False),  # absent key: equality fails
    ({"StringEqualsIfExists": {"aws:PrincipalTag/x509Subject/O": "Corp"}}, True),
    ({"ArnEquals": {"aws:SourceArn": ANCHOR}}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:123456789012:trust-anchor/*"}}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:999999999999:*"}}, False),
    ({"ArnNotEquals": {"aws:SourceArn": ANCHOR}}, False),
    ({"Null": {"aws:PrincipalTag/x509SAN/DNS": "true"}}, True),
    ({"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"},
      "StringLike": {"aws:PrincipalTag/x509Subject/CN": "db*"}}, False),  # operators are ANDed
])
def test_condition_operators(condition, allowed):
    assert (evaluate(policy(condition), CONTEXT) is None) is allowed


def test_principal_actions_and_deny():
    assert "sts:TagSession" in evaluate(policy(actions=["sts:AssumeRole"]), CONTEXT)
    assert evaluate(policy(actions=["sts:*"]), CONTEXT) is None
    assert evaluate(policy(principal={"Service": "ec2.amazonaws.com"}), CONTEXT) is not None
    assert evaluate(policy(principal={"AWS": "arn:aws:iam::123456789012:root"}), CONTEXT) is not None
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sts:TagSession",
            "Condition": {"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"}}}
    assert "explicitly denies sts:TagSession" in evaluate(policy(extra=[deny]), CONTEXT)


def test_unknown_operator_refuses_rather_than_ignores():
    refusal = evaluate(policy({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}), CONTEXT)
    assert "DateGreaterThan" in refusal
