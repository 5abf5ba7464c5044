"""Request → IAM action/resource mapping (Service Authorization Reference; S3 API "Permissions" sections)."""
import pytest

from aws_gate.operations import UnmappedOperation, s3_checks, session_policy_arns, session_tags, sts_checks


def s3(method, path, query=None, headers=None, region="us-east-1"):
    checks = s3_checks(method, path, query or {}, headers or {}, region, "REST-HEADER")
    return [(c.action, c.resource) for c in checks]


@pytest.mark.parametrize("method, path, query, headers, expected", [
    ("GET", "/", {}, {}, [("s3:ListAllMyBuckets", "arn:aws:s3:::*")]),
    ("GET", "/b", {"list-type": ["2"], "prefix": ["a/"]}, {}, [("s3:ListBucket", "arn:aws:s3:::b")]),
    ("HEAD", "/b", {}, {}, [("s3:ListBucket", "arn:aws:s3:::b")]),
    ("PUT", "/b", {}, {}, [("s3:CreateBucket", "arn:aws:s3:::b")]),
    ("DELETE", "/b/", {}, {}, [("s3:DeleteBucket", "arn:aws:s3:::b")]),
    ("GET", "/b", {"location": [""]}, {}, [("s3:GetBucketLocation", "arn:aws:s3:::b")]),
    ("GET", "/b/dir/k%20x", {"x-id": ["GetObject"]}, {}, [("s3:GetObject", "arn:aws:s3:::b/dir/k x")]),
    ("HEAD", "/b/k", {}, {}, [("s3:GetObject", "arn:aws:s3:::b/k")]),
    ("GET", "/b/k", {"versionId": ["v1"]}, {}, [("s3:GetObjectVersion", "arn:aws:s3:::b/k")]),
    ("PUT", "/b/k", {}, {}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ("PUT", "/b/k", {}, {"x-amz-copy-source": "/src/o%2Bp"},
     [("s3:PutObject", "arn:aws:s3:::b/k"), ("s3:GetObject", "arn:aws:s3:::src/o+p")]),
    ("DELETE", "/b/k", {"versionId": ["v1"]}, {}, [("s3:DeleteObjectVersion", "arn:aws:s3:::b/k")]),
    ("POST", "/b/k", {"uploads": [""]}, {}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ("PUT", "/b/k", {"uploadId": ["u"], "partNumber": ["1"]}, {}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ("DELETE", "/b/k", {"uploadId": ["u"]}, {}, [("s3:AbortMultipartUpload", "arn:aws:s3:::b/k")]),
    ("GET", "/b/k", {"tagging": [""], "versionId": ["v"]}, {}, [("s3:GetObjectVersionTagging", "arn:aws:s3:::b/k")]),
    ("GET", "/b", {}, {}, [("s3:ListBucket", "arn:aws:s3:::b")]),
])
def test_s3_requests_map_to_documented_actions(method, path, query, headers, expected):
    assert s3(method, path, query, headers) == expected


def test_partition_follows_the_region():
    assert s3("GET", "/b/k", region="cn-north-1") == [("s3:GetObject", "arn:aws-cn:s3:::b/k")]


def test_list_bucket_carries_its_condition_keys():
    [check] = s3_checks("GET", "/b", {"prefix": ["home/"], "delimiter": ["/"]}, {"x-amz-acl": "private"},
                        "us-east-1", "REST-HEADER")
    assert check.context["s3:prefix"] == "home/" and check.context["s3:delimiter"] == "/"
    assert check.context["s3:authType"] == "REST-HEADER"


@pytest.mark.parametrize("method, path, query", [
    ("POST", "/b", {"delete": [""]}),  # DeleteObjects: the keys are in the body
    ("GET", "/b", {"analytics": [""]}),
    ("PUT", "/", {}),
    ("GET", "/b/k", {"acl": [""], "tagging": [""]}),
])
def test_unmapped_s3_requests_raise(method, path, query):
    with pytest.raises(UnmappedOperation):
        s3(method, path, query)


def test_sts_assume_role_needs_tag_session_and_source_identity_when_used():
    params = {"Action": ["AssumeRole"], "RoleArn": ["arn:aws:iam::1:role/r"], "Tags.member.1.Key": ["team"],
              "Tags.member.1.Value": ["ops"], "SourceIdentity": ["host1"]}
    actions = [c.action for c in sts_checks(params)]
    assert actions == ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    assert session_tags(params) == {"team": "ops"}


def test_sts_get_caller_identity_needs_no_permission_and_others_are_unmapped():
    assert sts_checks({"Action": ["GetCallerIdentity"]}) == []
    with pytest.raises(UnmappedOperation):
        sts_checks({"Action": ["GetSessionToken"]})


def test_policy_arns_are_read_in_order():
    params = {"PolicyArns.member.1.arn": ["arn:a"], "PolicyArns.member.2.arn": ["arn:b"]}
    assert session_policy_arns(params) == ["arn:a", "arn:b"]
