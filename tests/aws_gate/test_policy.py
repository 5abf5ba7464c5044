"""Table-driven policy evaluation cases, each with the decision the IAM User Guide documents.

Pages (IAM/latest/UserGuide/...): reference_policies_evaluation-logic (EVAL), access_policies#policies_session
(SESSION), reference_policies_elements_notaction / _notresource (NOT), reference_policies_elements_condition_operators
(OPS), reference_policies_condition-logic-multiple-context-keys-or-values (MULTI), reference_policies_variables (VARS),
reference_policies_examples_s3_deny-except-bucket (S3EX), access_policies_boundaries (BOUNDARY).
"""
import json

import pytest

from aws_gate.policy import Decision, NamedPolicy, PolicyError, PolicyType, Request, evaluate

BUCKET = "arn:aws:s3:::allowed"
OTHER = "arn:aws:s3:::other"
ROLE = "arn:aws:iam::123456789012:role/fleet"


def policy(*statements, name="p", version="2012-10-17"):
    return NamedPolicy(name, {"Version": version, "Statement": list(statements)})


def allow(action="*", resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action="*", resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def allow_if(condition, action="*", resource="*"):
    return allow(action, resource, Condition=condition)


S3_FULL = policy({"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}, name="AmazonS3FullAccess")
S3_READ = policy({"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Describe*", "s3-object-lambda:Get*",
                                                "s3-object-lambda:List*"], "Resource": "*"}, name="AmazonS3ReadOnlyAccess")
SEED_INLINE = policy(
    {"Sid": "OnlyTheFleetBucket", "Effect": "Deny", "NotAction": "s3:ListAllMyBuckets",
     "NotResource": [BUCKET, BUCKET + "/*"]},
    {"Sid": "OnlyFromTheFleetNetwork", "Effect": "Deny", "Action": "*", "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.213.0.0/24", "127.0.0.1/32"]}}},
    name="session policy (inline)",
)
FLEET_HOST = {"aws:SourceIp": "10.213.0.11"}
OUTSIDER = {"aws:SourceIp": "192.0.2.7"}

ALLOW = (Decision.ALLOW, None)
IMPLICIT_IDENTITY = (Decision.IMPLICIT_DENY, PolicyType.IDENTITY)
IMPLICIT_SESSION = (Decision.IMPLICIT_DENY, PolicyType.SESSION)
EXPLICIT_IDENTITY = (Decision.EXPLICIT_DENY, PolicyType.IDENTITY)
EXPLICIT_SESSION = (Decision.EXPLICIT_DENY, PolicyType.SESSION)


def case(name, identity, session, action, resource, context, expected, boundary=None):
    return pytest.param(identity, session, boundary, Request(action, resource, context), expected, id=name)


CASES = [
    # EVAL: an allow in an identity-based policy, no session policy -> allowed
    case("identity-allow-no-session-policy", [S3_FULL], None, "s3:PutObject", BUCKET + "/k", {}, ALLOW),
    # EVAL: no statement allows -> implicit deny
    case("implicit-deny-without-allow", [policy(allow("s3:GetObject"))], None, "s3:PutObject", BUCKET + "/k", {},
         IMPLICIT_IDENTITY),
    # EVAL: an explicit deny overrides any allow
    case("explicit-deny-beats-allow", [policy(allow("s3:*"), deny("s3:DeleteObject"))], None, "s3:DeleteObject",
         BUCKET + "/k", {}, EXPLICIT_IDENTITY),
    # EVAL: deny in a session policy overrides the role's allow
    case("session-deny-beats-identity-allow", [S3_FULL], [policy(allow(), deny("s3:GetObject"))], "s3:GetObject",
         BUCKET + "/k", {}, EXPLICIT_SESSION),
    # SESSION: permissions = identity ∩ session; read-only session policy narrows full access
    case("session-policy-narrows-to-read-only", [S3_FULL], [S3_READ], "s3:PutObject", BUCKET + "/k", {},
         IMPLICIT_SESSION),
    case("session-policy-keeps-reads", [S3_FULL], [S3_READ], "s3:GetObject", BUCKET + "/k", {}, ALLOW),
    # SESSION: session policies cannot grant more than the role has
    case("session-policy-cannot-widen", [policy(allow("s3:GetObject"))], [S3_FULL], "s3:PutObject", BUCKET + "/k", {},
         IMPLICIT_IDENTITY),
    # SESSION: managed and inline session policies together form the session's limit
    case("managed-and-inline-session-policies-union", [S3_FULL], [S3_READ, policy(allow("s3:PutObject", BUCKET + "/*"))],
         "s3:PutObject", BUCKET + "/k", {}, ALLOW),
    # SESSION: an empty set of session policies is no session policy
    case("empty-session-policies-mean-none", [S3_FULL], [], "s3:PutObject", BUCKET + "/k", {}, ALLOW),
    # NOT: Deny + NotResource applies to every resource except the listed ones
    case("notresource-deny-other-bucket", [S3_FULL], [S3_READ, SEED_INLINE], "s3:ListBucket", OTHER, FLEET_HOST,
         EXPLICIT_SESSION),
    case("notresource-deny-spares-listed-bucket", [S3_FULL], [S3_READ, SEED_INLINE], "s3:ListBucket", BUCKET,
         FLEET_HOST, ALLOW),
    case("notresource-deny-spares-listed-objects", [S3_FULL], [S3_READ, SEED_INLINE], "s3:GetObject",
         BUCKET + "/dir/k", FLEET_HOST, ALLOW),
    # S3EX: a NotResource deny also hits ListAllMyBuckets (no bucket resource) unless NotAction spares it
    case("notresource-deny-hits-list-all-buckets", [S3_FULL],
         [S3_READ, policy({"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, BUCKET + "/*"]})],
         "s3:ListAllMyBuckets", "arn:aws:s3:::*", {}, EXPLICIT_SESSION),
    case("seed-list-all-buckets-allowed", [S3_FULL], [S3_READ, SEED_INLINE], "s3:ListAllMyBuckets", "arn:aws:s3:::*",
         FLEET_HOST, ALLOW),
    case("seed-outside-address-denied", [S3_FULL], [S3_READ, SEED_INLINE], "s3:ListBucket", BUCKET, OUTSIDER,
         EXPLICIT_SESSION),
    # NOT: Allow + NotAction allows everything except the listed actions
    case("notaction-allow-matches-others", [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], None,
         "s3:GetObject", BUCKET + "/k", {}, ALLOW),
    case("notaction-allow-excludes-listed", [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], None,
         "iam:CreateUser", "arn:aws:iam::123456789012:user/x", {}, IMPLICIT_IDENTITY),
    case("notaction-deny-blocks-other-services", [policy(allow(), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"})],
         None, "iam:ListUsers", "*", {}, EXPLICIT_IDENTITY),
    # reference_policies_elements_action: wildcards anywhere, case-insensitive
    case("action-wildcard-prefix", [policy(allow("s3:Get*"))], None, "s3:GetObjectVersion", BUCKET + "/k", {}, ALLOW),
    case("action-wildcard-single-char", [policy(allow("s3:?etObject"))], None, "s3:GetObject", BUCKET + "/k", {}, ALLOW),
    case("action-case-insensitive", [policy(allow("S3:getobject"))], None, "s3:GetObject", BUCKET + "/k", {}, ALLOW),
    # reference_policies_elements_resource: case-sensitive, wildcards, list = any
    case("resource-case-sensitive", [policy(allow("s3:*", "arn:aws:s3:::Allowed/*"))], None, "s3:GetObject",
         BUCKET + "/k", {}, IMPLICIT_IDENTITY),
    case("resource-single-char-wildcard", [policy(allow("s3:*", "arn:aws:s3:::bucket-?"))], None, "s3:ListBucket",
         "arn:aws:s3:::bucket-10", {}, IMPLICIT_IDENTITY),
    case("resource-list-is-or", [policy(allow("s3:*", [OTHER, BUCKET]))], None, "s3:ListBucket", BUCKET, {}, ALLOW),
    # OPS: StringEquals / StringNotEquals / missing keys
    case("string-equals-match", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Innovation"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/x509Subject/OU": "Innovation"}, ALLOW),
    case("string-equals-is-case-sensitive", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/team": "Ops"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "ops"}, IMPLICIT_IDENTITY),
    case("string-equals-missing-key-is-false", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/team": "ops"}}))],
         None, "s3:GetObject", BUCKET + "/k", {}, IMPLICIT_IDENTITY),
    case("string-not-equals-missing-key-is-true", [S3_FULL],
         [policy(allow(), deny(Condition={"StringNotEquals": {"aws:PrincipalTag/x509Subject/CN": "host1"}}))],
         "s3:GetObject", BUCKET + "/k", {}, EXPLICIT_SESSION),
    case("string-equals-ignore-case", [policy(allow_if({"StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "OPS"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "ops"}, ALLOW),
    case("string-like-wildcard", [policy(allow_if({"StringLike": {"s3:prefix": ["home/*"]}}, "s3:ListBucket"))], None,
         "s3:ListBucket", BUCKET, {"s3:prefix": "home/alice/"}, ALLOW),
    case("string-not-like-denies-match", [policy(allow(), deny(Condition={"StringNotLike": {"s3:prefix": "home/*"}}))],
         None, "s3:ListBucket", BUCKET, {"s3:prefix": "etc/"}, EXPLICIT_IDENTITY),
    # OPS: ArnEquals and ArnLike both take wildcards, per ARN part
    case("arn-like-principal", [policy(allow_if({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/fl*"}}))], None,
         "s3:GetObject", BUCKET + "/k", {"aws:PrincipalArn": ROLE}, ALLOW),
    case("arn-equals-takes-wildcards", [policy(allow_if({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/*"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalArn": ROLE}, ALLOW),
    case("arn-like-star-matches-any-arn", [policy(allow_if({"ArnLike": {"aws:PrincipalArn": "*"}}))], None,
         "s3:GetObject", BUCKET + "/k", {"aws:PrincipalArn": ROLE}, ALLOW),
    case("arn-like-non-arn-value-does-not-match", [policy(allow_if({"ArnLike": {"aws:SourceArn": "arn:aws:*:*:*:*"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:SourceArn": "not-an-arn"}, IMPLICIT_IDENTITY),
    case("arn-not-equals-other-account", [policy(allow(), deny(Condition={"ArnNotEquals": {"aws:PrincipalArn": ROLE}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalArn": "arn:aws:iam::999999999999:role/fleet"},
         EXPLICIT_IDENTITY),
    # OPS: IpAddress / NotIpAddress with CIDR; an IPv6 caller is outside IPv4 ranges
    case("ip-address-inside", [policy(allow_if({"IpAddress": {"aws:SourceIp": "10.213.0.0/24"}}))], None,
         "s3:GetObject", BUCKET + "/k", FLEET_HOST, ALLOW),
    case("ip-address-outside", [policy(allow_if({"IpAddress": {"aws:SourceIp": "10.213.0.0/24"}}))], None,
         "s3:GetObject", BUCKET + "/k", OUTSIDER, IMPLICIT_IDENTITY),
    case("not-ip-address-ipv6-caller", [S3_FULL], [S3_READ, SEED_INLINE], "s3:GetObject", BUCKET + "/k",
         {"aws:SourceIp": "2001:db8::1"}, EXPLICIT_SESSION),
    # OPS: Bool, ...IfExists
    case("bool-secure-transport-false", [policy(allow(), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:SecureTransport": "false"}, EXPLICIT_IDENTITY),
    case("bool-if-exists-missing-key-is-true", [policy(allow_if({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}))],
         None, "s3:GetObject", BUCKET + "/k", {}, ALLOW),
    case("string-equals-if-exists-present-mismatch", [policy(allow_if({"StringEqualsIfExists": {"s3:x-amz-acl": "private"}}))],
         None, "s3:PutObject", BUCKET + "/k", {"s3:x-amz-acl": "public-read"}, IMPLICIT_IDENTITY),
    # OPS: Date operators, ISO 8601 or epoch values
    case("date-less-than-before", [policy(allow_if({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:CurrentTime": "2026-11-27T12:00:00Z"}, ALLOW),
    case("date-less-than-after", [policy(allow_if({"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:CurrentTime": "2026-11-27T12:00:00Z"}, IMPLICIT_IDENTITY),
    case("date-greater-than-epoch-value", [policy(allow_if({"DateGreaterThan": {"aws:TokenIssueTime": "1700000000"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:TokenIssueTime": "2026-11-27T12:00:00Z"}, ALLOW),
    case("numeric-less-than-equals", [policy(allow_if({"NumericLessThanEquals": {"s3:max-keys": "10"}}))], None,
         "s3:ListBucket", BUCKET, {"s3:max-keys": "1000"}, IMPLICIT_IDENTITY),
    # OPS: Null checks presence
    case("null-true-when-key-absent", [policy(allow(), deny(Condition={"Null": {"aws:PrincipalTag/x509Subject/CN": "true"}}))],
         None, "s3:GetObject", BUCKET + "/k", {}, EXPLICIT_IDENTITY),
    case("null-false-when-key-present", [policy(allow_if({"Null": {"aws:PrincipalTag/x509Subject/CN": "false"}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/x509Subject/CN": "host1"}, ALLOW),
    # MULTI: values of one key are ORed, keys and operators are ANDed, negation covers all values
    case("multiple-values-or", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/team": ["dev", "ops"]}}))], None,
         "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "ops"}, ALLOW),
    case("multiple-keys-and", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/team": "ops",
                                                                 "aws:PrincipalTag/env": "prod"}}))], None,
         "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "ops", "aws:PrincipalTag/env": "test"},
         IMPLICIT_IDENTITY),
    case("multiple-operators-and", [policy(allow_if({"StringEquals": {"aws:PrincipalTag/team": "ops"},
                                                     "IpAddress": {"aws:SourceIp": "10.213.0.0/24"}}))], None,
         "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "ops", **OUTSIDER}, IMPLICIT_IDENTITY),
    case("negated-multiple-values-nor", [policy(allow(), deny(Condition={"StringNotEquals": {"aws:PrincipalTag/team": ["dev", "ops"]}}))],
         None, "s3:GetObject", BUCKET + "/k", {"aws:PrincipalTag/team": "dev"}, ALLOW),
    case("condition-key-names-case-insensitive", [policy(allow_if({"IpAddress": {"AWS:SOURCEIP": "10.213.0.0/24"}}))],
         None, "s3:GetObject", BUCKET + "/k", FLEET_HOST, ALLOW),
    # MULTI: ForAllValues is true for an absent key, ForAnyValue false; both test every request value
    case("for-all-values-subset", [policy(allow_if({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}))],
         None, "sts:TagSession", ROLE, {"aws:TagKeys": ["team", "owner"]}, IMPLICIT_IDENTITY),
    case("for-all-values-absent-key", [policy(allow_if({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}))],
         None, "sts:TagSession", ROLE, {}, ALLOW),
    case("for-any-value-absent-key", [policy(allow_if({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}))],
         None, "sts:TagSession", ROLE, {}, IMPLICIT_IDENTITY),
    case("for-any-value-one-matches", [policy(allow_if({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}))],
         None, "sts:TagSession", ROLE, {"aws:TagKeys": ["owner", "team"]}, ALLOW),
    # VARS: ${key} in Resource, only with Version 2012-10-17
    case("policy-variable-in-resource", [policy(allow("s3:*", "arn:aws:s3:::allowed/${aws:PrincipalTag/x509Subject/CN}/*"))],
         None, "s3:PutObject", BUCKET + "/host1/k", {"aws:PrincipalTag/x509Subject/CN": "host1"}, ALLOW),
    case("policy-variable-other-value", [policy(allow("s3:*", "arn:aws:s3:::allowed/${aws:PrincipalTag/x509Subject/CN}/*"))],
         None, "s3:PutObject", BUCKET + "/host2/k", {"aws:PrincipalTag/x509Subject/CN": "host1"}, IMPLICIT_IDENTITY),
    case("policy-variable-literal-in-2008-version", [policy(allow("s3:*", "arn:aws:s3:::allowed/${aws:username}/*"),
                                                            version="2008-10-17")],
         None, "s3:PutObject", BUCKET + "/${aws:username}/k", {"aws:username": "x"}, ALLOW),
    # BOUNDARY: a permissions boundary must allow too
    case("permissions-boundary-limits", [S3_FULL], None, "s3:PutObject", BUCKET + "/k", {},
         (Decision.IMPLICIT_DENY, PolicyType.PERMISSIONS_BOUNDARY), boundary=S3_READ),
    # A Deny whose condition does not hold does not apply
    case("deny-with-unmet-condition-ignored", [S3_FULL], [S3_READ, SEED_INLINE], "s3:GetObject", BUCKET + "/k",
         {"aws:SourceIp": "127.0.0.1"}, ALLOW),
]


@pytest.mark.parametrize("identity, session, boundary, request_, expected", CASES)
def test_evaluation_matches_aws_documented_decision(identity, session, boundary, request_, expected):
    result = evaluate(request_, identity, session, boundary)
    assert (result.decision, result.policy_type) == expected


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_single_statement_object_and_json_text_are_accepted():
    document = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}})
    result = evaluate(Request("s3:GetObject", BUCKET + "/k"), [S3_FULL], [NamedPolicy("inline", document)])
    assert result.decision is Decision.EXPLICIT_DENY
    assert result.policy_name == "inline"


def test_denied_reason_uses_aws_wording():
    implicit = evaluate(Request("s3:PutObject", BUCKET + "/k"), [S3_FULL], [S3_READ])
    assert implicit.reason("s3:PutObject") == "because no session policy allows the s3:PutObject action"
    explicit = evaluate(Request("s3:ListBucket", OTHER, FLEET_HOST), [S3_FULL], [S3_READ, SEED_INLINE])
    assert explicit.reason("s3:ListBucket") == "with an explicit deny in a session policy"
    assert explicit.sid == "OnlyTheFleetBucket"
    identity = evaluate(Request("s3:GetObject", BUCKET + "/k"), [policy(deny("s3:GetObject"))])
    assert identity.reason("s3:GetObject") == "with an explicit deny in an identity-based policy"
    bounded = evaluate(Request("s3:PutObject", BUCKET + "/k"), [S3_FULL], None, S3_READ)
    assert bounded.reason("s3:PutObject") == "because no permissions boundary allows the s3:PutObject action"


@pytest.mark.parametrize("statement, problem", [
    ({"Effect": "Allow", "Action": "s3:*"}, "exactly one of Resource / NotResource"),
    ({"Effect": "Allow", "Action": "s3:*", "NotAction": "iam:*", "Resource": "*"}, "exactly one of Action / NotAction"),
    ({"Effect": "Permit", "Action": "s3:*", "Resource": "*"}, "Effect must be"),
    ({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}, "take no Principal"),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEqualz": {"k": "v"}}},
     "unknown condition operator"),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}}},
     "not a valid value for IpAddress"),
])
def test_malformed_policies_raise_a_named_error(statement, problem):
    with pytest.raises(PolicyError, match=problem):
        evaluate(Request("s3:GetObject", BUCKET + "/k", {"k": "v", "aws:SourceIp": "10.0.0.1"}), [policy(statement)])


def test_invalid_json_names_the_policy():
    with pytest.raises(PolicyError, match="'broken' is not valid JSON"):
        evaluate(Request("s3:GetObject", "*"), [NamedPolicy("broken", "{not json")])
