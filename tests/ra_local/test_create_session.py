"""CreateSession end to end: the independent PyPI client gets working credentials; each refusal AWS makes."""
import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from iam_rolesanywhere_session import IAMRolesAnywhereSession

from tests.ra_local.client import create_session
from tests.ra_local.pki import CA, key_pem, pem
from tests.support.aws import provision, start_ra_local, write_tls_files

LIST_BUCKETS_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}


@pytest.fixture(scope="module")
def ca():
    return CA("create-session CA")


@pytest.fixture(scope="module")
def arns(ra_endpoint, ca):
    return provision(ra_endpoint, ca.pem, role_policy=LIST_BUCKETS_ONLY,
                     conditions={"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Fleet"}})


def session_client(moto, credentials, service="sts"):
    return moto.client(service, keys={"aws_access_key_id": credentials["accessKeyId"],
                                      "aws_secret_access_key": credentials["secretAccessKey"],
                                      "aws_session_token": credentials["sessionToken"]})


@pytest.mark.parametrize("key_kind", ["ec", "rsa"])
def test_pypi_client_gets_credentials_that_moto_enforces(ra_endpoint_tls, moto_server, tmp_path, key_kind):
    """iam-rolesanywhere-session (own signer, ARNs in the body, HTTPS) → credentials → moto STS and S3."""
    ca = CA(f"pypi client CA {key_kind}", key_kind=key_kind)
    arns = provision(ra_endpoint_tls, ca.pem, role_policy=LIST_BUCKETS_ONLY)
    cert, key = ca.issue(key_kind=key_kind, cn=f"pypi-{key_kind}.example.test")
    session = IAMRolesAnywhereSession(
        profile_arn=arns["profile_arn"], role_arn=arns["role_arn"], trust_anchor_arn=arns["trust_anchor_arn"],
        certificate=pem(cert).encode(), private_key=key_pem(key).encode(), region=ra_endpoint_tls.region,
        endpoint=f"{ra_endpoint_tls.host}:{ra_endpoint_tls.port}", verify=ra_endpoint_tls.ca_file, session_duration=900,
    ).get_session()
    identity = session.client("sts", endpoint_url=moto_server.endpoint).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{moto_server.account}:assumed-role/{arns['role_name']}/{cert.serial_number:x}"
    s3 = session.client("s3", endpoint_url=moto_server.endpoint)
    assert "Buckets" in s3.list_buckets()
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.create_bucket(Bucket=f"denied-{key_kind}")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_hash_named_algorithm_is_flagged_or_refused(ra_endpoint_tls, moto_server, tmp_path):
    """iam-rolesanywhere-session names the algorithm after the leaf's hash (here AWS4-X509-ECDSA-SHA384) and
    signs with SHA-256: accepted and logged by default, refused with --strict-algorithm."""
    from cryptography.hazmat.primitives import hashes
    from iam_rolesanywhere_session import CredentialsRetrievalError

    ca = CA("sha384 CA")
    cert, key = ca.issue(cn="sha384.example.test", hash_algorithm=hashes.SHA384())

    def caller_arn(endpoint):
        arns = provision(endpoint, ca.pem)
        session = IAMRolesAnywhereSession(
            profile_arn=arns["profile_arn"], role_arn=arns["role_arn"], trust_anchor_arn=arns["trust_anchor_arn"],
            certificate=pem(cert).encode(), private_key=key_pem(key).encode(), region=endpoint.region,
            endpoint=f"{endpoint.host}:{endpoint.port}", verify=endpoint.ca_file, session_duration=900,
        ).get_session()
        return session.client("sts", endpoint_url=moto_server.endpoint).get_caller_identity()["Arn"]

    assert caller_arn(ra_endpoint_tls).endswith(f"/{cert.serial_number:x}")
    assert "algorithm name AWS4-X509-ECDSA-SHA384 is not one AWS documents" in ra_endpoint_tls.log()

    strict = start_ra_local(moto_server, tmp_path, tls=write_tls_files(tmp_path / "tls"), strict_algorithm=True)
    try:
        with pytest.raises(CredentialsRetrievalError) as refused:
            caller_arn(strict)
    finally:
        strict.stop()
    assert refused.value.status_code == 403 and "unsupported algorithm 'AWS4-X509-ECDSA-SHA384'" in refused.value.message


def test_response_shape_and_session_name(ra_endpoint, moto_server, ca, arns):
    cert, key = ca.issue(cn="shape.example.test")
    status, document = create_session(ra_endpoint, cert, key, arns, duration=900)
    assert status == 201
    (entry,) = document["credentialSet"]
    assert set(entry["credentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}
    assert all(entry["credentials"].values())
    expiration = datetime.strptime(entry["credentials"]["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(seconds=800) < expiration - datetime.now(timezone.utc) <= timedelta(seconds=900)
    assert entry["roleArn"] == arns["role_arn"] and entry["sourceIdentity"] == "shape.example.test"
    assert entry["assumedRoleUser"]["assumedRoleId"].endswith(f":{cert.serial_number:x}")
    assert session_client(moto_server, entry["credentials"]).get_caller_identity()["Arn"] == entry["assumedRoleUser"]["arn"]


def test_chain_header_supplies_the_intermediate(ra_endpoint, ca):
    intermediate = CA("issuing intermediate", issuer=ca)
    arns = provision(ra_endpoint, ca.pem)
    cert, key = intermediate.issue(cn="via-intermediate.example.test")
    assert create_session(ra_endpoint, cert, key, arns, chain=[cert, intermediate.cert])[0] == 201
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert document["message"].startswith("Untrusted Signing Certificate: no valid chain")


def test_role_session_name_only_when_the_profile_accepts_it(ra_endpoint, ca):
    cert, key = ca.issue()
    refusing = provision(ra_endpoint, ca.pem)
    status, document = create_session(ra_endpoint, cert, key, refusing, role_session_name="custom")
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert document["message"].startswith("Not authorized to set roleSessionName.")
    accepting = provision(ra_endpoint, ca.pem, acceptRoleSessionName=True)
    status, document = create_session(ra_endpoint, cert, key, accepting, role_session_name="custom")
    assert status == 201 and document["credentialSet"][0]["assumedRoleUser"]["arn"].endswith("/custom")
    status, document = create_session(ra_endpoint, cert, key, accepting, role_session_name="no spaces allowed")
    assert (status, document["errorType"]) == (400, "ValidationException") and "roleSessionName" in document["message"]


def test_instance_properties_when_the_profile_requires_them(ra_endpoint, ca):
    cert, key = ca.issue()
    arns = provision(ra_endpoint, ca.pem, requireInstanceProperties=True)
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert "requires instanceProperties" in document["message"]
    properties = {"hostname": "host1", "rack": "r7"}
    status, document = create_session(ra_endpoint, cert, key, arns, extra_body={"instanceProperties": properties})
    assert status == 201
    subject = ra_endpoint.client().get_subject(subjectId=document["subjectArn"].rsplit("/", 1)[1])["subject"]
    assert subject["instanceProperties"][-1]["properties"] == properties


NOW = datetime.now(timezone.utc)
LEAF_REFUSALS = {
    "expired": ({"not_before": NOW - timedelta(days=3), "not_after": NOW - timedelta(days=1)}, "expired at"),
    "not yet valid": ({"not_before": NOW + timedelta(days=1), "not_after": NOW + timedelta(days=3)}, "is not valid before"),
    "CA:TRUE leaf": ({"ca": True}, "is a CA certificate"),
    "no basicConstraints": ({"basic_constraints": False}, "no basicConstraints"),
    "no digitalSignature": ({"digital_signature": False}, "lacks keyUsage digitalSignature"),
    "SHA-1 leaf": ({"sha1": True}, "signed with sha1"),
}


@pytest.mark.parametrize("case", LEAF_REFUSALS)
def test_certificate_rule_refusals(ra_endpoint, ca, arns, case):
    options, reason = LEAF_REFUSALS[case]
    cert, key = ca.issue_sha1() if options.get("sha1") else ca.issue(**options)
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert document["message"].startswith("Untrusted Signing Certificate") and reason in document["message"]


def test_wrong_ca_is_untrusted(ra_endpoint, arns):
    cert, key = CA("some other CA").issue()
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert "no valid chain" in document["message"] and arns["trust_anchor_arn"] in document["message"]


def test_revoked_serial_is_refused_while_the_crl_is_enabled(ra_endpoint, ca, arns):
    cert, key = ca.issue(cn="revoked.example.test")
    client = ra_endpoint.client()
    crl = client.import_crl(name="revocations", crlData=ca.crl([cert.serial_number]),
                            trustAnchorArn=arns["trust_anchor_arn"], enabled=True)["crl"]
    try:
        status, document = create_session(ra_endpoint, cert, key, arns)
        assert (status, document["errorType"]) == (403, "AccessDeniedException")
        assert f"serial {cert.serial_number}" in document["message"] and "revoked by CRL 'revocations'" in document["message"]
        client.disable_crl(crlId=crl["crlId"])
        assert create_session(ra_endpoint, cert, key, arns)[0] == 201
    finally:
        client.delete_crl(crlId=crl["crlId"])


def test_unknown_and_disabled_trust_anchor(ra_endpoint, ca):
    cert, key = ca.issue()
    arns = provision(ra_endpoint, ca.pem)
    unknown = dict(arns, trust_anchor_arn=arns["trust_anchor_arn"][:-12] + "000000000000")
    status, document = create_session(ra_endpoint, cert, key, unknown)
    assert (status, document["errorType"]) == (403, "AccessDeniedException") and "does not exist" in document["message"]
    ra_endpoint.client().disable_trust_anchor(trustAnchorId=arns["trust_anchor_arn"])
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException") and "is disabled" in document["message"]


def test_disabled_profile_and_role_not_in_profile(ra_endpoint, ca):
    cert, key = ca.issue()
    arns = provision(ra_endpoint, ca.pem)
    other_role = dict(arns, role_arn="arn:aws:iam::123456789012:role/not-in-profile")
    status, document = create_session(ra_endpoint, cert, key, other_role)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert "is not listed in profile" in document["message"]
    ra_endpoint.client().disable_profile(profileId=arns["profile_arn"])
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert f"Profile {arns['profile_arn']} is disabled" == document["message"]


def test_trust_policy_conditions(ra_endpoint, ca, arns):
    cert, key = ca.issue(ou="Finance")
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert "StringEquals aws:PrincipalTag/x509Subject/OU" in document["message"]

    like = provision(ra_endpoint, ca.pem, conditions={"StringLike": {"aws:PrincipalTag/x509Subject/CN": "*.example.test"},
                                                       "StringNotEquals": {"aws:PrincipalTag/x509Subject/OU": "Finance"}})
    assert create_session(ra_endpoint, *ca.issue(cn="web1.example.test"), like)[0] == 201
    status, document = create_session(ra_endpoint, *ca.issue(cn="web1.example.org"), like)
    assert status == 403 and "StringLike aws:PrincipalTag/x509Subject/CN" in document["message"]
    status, document = create_session(ra_endpoint, cert, key, like)
    assert status == 403 and "StringNotEquals" in document["message"]

    other_anchor = provision(ra_endpoint, ca.pem)  # its role is pinned to its own trust anchor
    crossed = dict(other_anchor, trust_anchor_arn=arns["trust_anchor_arn"])
    ra_endpoint.client().update_profile(profileId=crossed["profile_arn"], roleArns=[crossed["role_arn"]])
    status, document = create_session(ra_endpoint, *ca.issue(), crossed)
    assert status == 403 and "ArnEquals aws:SourceArn" in document["message"]


def test_clock_skew_and_tampered_signature(ra_endpoint, ca, arns):
    cert, key = ca.issue()
    stale = datetime.now(timezone.utc) - timedelta(minutes=10)
    status, document = create_session(ra_endpoint, cert, key, arns, signed_at=stale)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert document["message"].startswith("Signature expired") and "300 s" in document["message"]

    def flip_last_signature_digit(request):
        authorization = request.headers["Authorization"]
        del request.headers["Authorization"]
        request.headers["Authorization"] = authorization[:-1] + ("0" if authorization[-1] != "0" else "1")

    status, document = create_session(ra_endpoint, cert, key, arns, tamper=flip_last_signature_digit)
    assert (status, document["errorType"]) == (403, "AccessDeniedException")
    assert document["message"].startswith("Invalid signature")


@pytest.mark.parametrize("duration", [899, 3601, 43201])
def test_duration_out_of_range(ra_endpoint, ca, arns, duration):
    cert, key = ca.issue()
    status, document = create_session(ra_endpoint, cert, key, arns, duration=duration)
    assert (status, document["errorType"]) == (400, "ValidationException")
    assert f"durationSeconds {duration} is out of range" in document["message"]


def test_profile_session_policy_reaches_sts(ra_endpoint, moto_server, ca):
    """moto records the session policy of each assumed-role session (its /moto-api/data.json state view)."""
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]})
    arns = provision(ra_endpoint, ca.pem, sessionPolicy=policy, managedPolicyArns=["arn:aws:iam::aws:policy/ReadOnlyAccess"])
    cert, key = ca.issue()
    assert create_session(ra_endpoint, cert, key, arns)[0] == 201
    with urllib.request.urlopen(f"{moto_server.endpoint}/moto-api/data.json", timeout=10) as response:
        sessions = json.loads(response.read())["sts"]["AssumedRole"]
    (session,) = [s for s in sessions if s["role_arn"] == arns["role_arn"]]
    assert session["session_name"] == f"{cert.serial_number:x}" and session["policy"] == policy
