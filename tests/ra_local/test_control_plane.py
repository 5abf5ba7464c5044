"""The control plane as boto3 and the AWS CLI drive it, unchanged, against ra_local."""
import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.ra_local.client import create_session
from tests.ra_local.pki import CA
from tests.support.aws import provision

@pytest.fixture(scope="module")
def ra(ra_endpoint):
    return ra_endpoint.client()


@pytest.fixture(scope="module")
def ca():
    return CA("control plane CA")


def error_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def test_trust_anchor_lifecycle(ra, ca):
    created = ra.create_trust_anchor(
        name="lifecycle anchor",
        source={"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca.pem}},
        tags=[{"key": "team", "value": "fleet"}],
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    anchor = created["trustAnchor"]
    assert anchor["enabled"] is False and anchor["source"]["sourceData"]["x509CertificateData"] == ca.pem
    assert {s["event"] for s in anchor["notificationSettings"]} == {"CA_CERTIFICATE_EXPIRY", "END_ENTITY_CERTIFICATE_EXPIRY"}
    anchor_id, anchor_arn = anchor["trustAnchorId"], anchor["trustAnchorArn"]
    assert anchor_arn == f"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/{anchor_id}"

    assert ra.enable_trust_anchor(trustAnchorId=anchor_id)["trustAnchor"]["enabled"] is True
    assert ra.get_trust_anchor(trustAnchorId=anchor_arn)["trustAnchor"]["enabled"] is True  # ARN works as id
    renamed = ra.update_trust_anchor(trustAnchorId=anchor_id, name="renamed anchor")["trustAnchor"]
    assert renamed["name"] == "renamed anchor" and renamed["updatedAt"] >= renamed["createdAt"]
    assert ra.disable_trust_anchor(trustAnchorId=anchor_id)["trustAnchor"]["enabled"] is False

    put = ra.put_notification_settings(
        trustAnchorId=anchor_id,
        notificationSettings=[{"enabled": False, "event": "CA_CERTIFICATE_EXPIRY", "threshold": 10}],
    )["trustAnchor"]["notificationSettings"]
    ca_setting = next(s for s in put if s["event"] == "CA_CERTIFICATE_EXPIRY")
    assert (ca_setting["enabled"], ca_setting["threshold"]) == (False, 10)
    reset = ra.reset_notification_settings(
        trustAnchorId=anchor_id, notificationSettingKeys=[{"event": "CA_CERTIFICATE_EXPIRY"}]
    )["trustAnchor"]["notificationSettings"]
    ca_setting = next(s for s in reset if s["event"] == "CA_CERTIFICATE_EXPIRY")
    assert (ca_setting["enabled"], ca_setting["threshold"]) == (True, 45)

    assert ra.list_tags_for_resource(resourceArn=anchor_arn)["tags"] == [{"key": "team", "value": "fleet"}]
    ra.tag_resource(resourceArn=anchor_arn, tags=[{"key": "env", "value": "test"}])
    ra.untag_resource(resourceArn=anchor_arn, tagKeys=["team"])
    assert ra.list_tags_for_resource(resourceArn=anchor_arn)["tags"] == [{"key": "env", "value": "test"}]

    listed = [a["trustAnchorId"] for page in ra.get_paginator("list_trust_anchors").paginate(pageSize=1)
              for a in page["trustAnchors"]]
    assert anchor_id in listed and len(listed) == len(set(listed))
    assert ra.delete_trust_anchor(trustAnchorId=anchor_id)["trustAnchor"]["trustAnchorId"] == anchor_id
    assert error_of(ra.get_trust_anchor, trustAnchorId=anchor_id)[:2] == (404, "ResourceNotFoundException")
    assert error_of(ra.list_tags_for_resource, resourceArn=anchor_arn)[:2] == (404, "ResourceNotFoundException")


def test_profile_lifecycle(ra):
    role = "arn:aws:iam::123456789012:role/profile-lifecycle"
    session_policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]})
    profile = ra.create_profile(
        name="lifecycle profile", roleArns=[role], sessionPolicy=session_policy,
        managedPolicyArns=["arn:aws:iam::aws:policy/ReadOnlyAccess"], durationSeconds=1800,
        acceptRoleSessionName=True, requireInstanceProperties=False,
    )["profile"]
    assert (profile["enabled"], profile["durationSeconds"], profile["acceptRoleSessionName"]) == (False, 1800, True)
    assert {m["certificateField"] for m in profile["attributeMappings"]} == {"x509Subject", "x509Issuer", "x509SAN"}
    profile_id = profile["profileId"]

    assert ra.enable_profile(profileId=profile_id)["profile"]["enabled"] is True
    updated = ra.update_profile(profileId=profile_id, durationSeconds=3600, roleArns=[role, role + "2"])["profile"]
    assert updated["durationSeconds"] == 3600 and updated["roleArns"] == [role, role + "2"]
    assert ra.get_profile(profileId=profile["profileArn"])["profile"]["managedPolicyArns"] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert ra.disable_profile(profileId=profile_id)["profile"]["enabled"] is False

    mapped = ra.put_attribute_mapping(profileId=profile_id, certificateField="x509Subject",
                                      mappingRules=[{"specifier": "CN"}, {"specifier": "OU"}])["profile"]
    subject_rules = next(m for m in mapped["attributeMappings"] if m["certificateField"] == "x509Subject")["mappingRules"]
    assert subject_rules == [{"specifier": "CN"}, {"specifier": "OU"}]
    trimmed = ra.delete_attribute_mapping(profileId=profile_id, certificateField="x509Subject", specifiers=["OU"])["profile"]
    subject_rules = next(m for m in trimmed["attributeMappings"] if m["certificateField"] == "x509Subject")["mappingRules"]
    assert subject_rules == [{"specifier": "CN"}]
    without_san = ra.delete_attribute_mapping(profileId=profile_id, certificateField="x509SAN")["profile"]
    assert "x509SAN" not in {m["certificateField"] for m in without_san["attributeMappings"]}

    assert profile_id in [p["profileId"] for p in ra.list_profiles()["profiles"]]
    ra.delete_profile(profileId=profile_id)
    assert error_of(ra.get_profile, profileId=profile_id)[:2] == (404, "ResourceNotFoundException")


def test_crl_lifecycle(ra, ca):
    anchor = ra.create_trust_anchor(
        name="crl anchor", source={"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca.pem}}
    )["trustAnchor"]
    first, second = ca.crl([1001]), ca.crl([1001, 1002])
    crl = ra.import_crl(name="crl one", crlData=first, trustAnchorArn=anchor["trustAnchorArn"], enabled=True)["crl"]
    assert crl["crlData"] == first and crl["enabled"] is True and crl["trustAnchorArn"] == anchor["trustAnchorArn"]
    crl_id = crl["crlId"]
    assert ra.update_crl(crlId=crl_id, crlData=second, name="crl two")["crl"]["crlData"] == second
    assert ra.disable_crl(crlId=crl_id)["crl"]["enabled"] is False
    assert ra.enable_crl(crlId=crl_id)["crl"]["enabled"] is True
    assert ra.get_crl(crlId=crl["crlArn"])["crl"]["name"] == "crl two"
    assert crl_id in [c["crlId"] for c in ra.list_crls()["crls"]]
    ra.delete_crl(crlId=crl_id)
    assert error_of(ra.get_crl, crlId=crl_id)[:2] == (404, "ResourceNotFoundException")
    status, code, message = error_of(ra.import_crl, name="junk", crlData=b"not a crl", trustAnchorArn=anchor["trustAnchorArn"])
    assert (status, code) == (400, "ValidationException") and "crlData" in message
    ra.delete_trust_anchor(trustAnchorId=anchor["trustAnchorId"])


def test_subjects_record_who_authenticated(ra_endpoint, ra, ca):
    arns = provision(ra_endpoint, ca.pem)
    cert, key = ca.issue(cn="subject-host.example.test")
    status, document = create_session(ra_endpoint, cert, key, arns)
    assert status == 201
    subject_id = document["subjectArn"].rsplit("/", 1)[1]
    subjects = [s for page in ra.get_paginator("list_subjects").paginate() for s in page["subjects"]]
    assert subject_id in [s["subjectId"] for s in subjects]
    subject = ra.get_subject(subjectId=subject_id)["subject"]
    assert "CN=subject-host.example.test" in subject["x509Subject"]
    (credential,) = subject["credentials"]
    assert credential["serialNumber"] == str(cert.serial_number) and credential["failed"] is False
    assert "lastSeenAt" in subject

    ra.update_profile(profileId=arns["profile_arn"], roleArns=["arn:aws:iam::123456789012:role/other"])
    status, _ = create_session(ra_endpoint, cert, key, arns)
    assert status == 403
    (credential,) = ra.get_subject(subjectId=subject_id)["subject"]["credentials"]
    assert credential["failed"] is True


def test_server_side_validation_and_errors(ra_endpoint, ca):
    unchecked = ra_endpoint.client(config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    status, code, message = error_of(unchecked.create_profile, name="bad/name", roleArns=[])
    assert (status, code) == (400, "ValidationException") and "'name'" in message
    status, code, message = error_of(unchecked.create_profile, name="ok", roleArns=["arn:aws:iam::1:role/r"], durationSeconds=60)
    assert (status, code) == (400, "ValidationException") and "durationSeconds" in message
    status, code, message = error_of(unchecked.create_trust_anchor, name="leaf as anchor", source={
        "sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": "not a certificate"}})
    assert (status, code) == (400, "ValidationException") and "x509CertificateData" in message
    leaf, _ = ca.issue()
    from tests.ra_local.pki import pem

    status, code, message = error_of(unchecked.create_trust_anchor, name="leaf", source={
        "sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": pem(leaf)}})
    assert (status, code) == (400, "ValidationException") and "CA:TRUE" in message
    status, code, _ = error_of(unchecked.get_profile, profileId="00000000-0000-0000-0000-000000000000")
    assert (status, code) == (404, "ResourceNotFoundException")
    too_many = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    status, code, _ = error_of(unchecked.create_profile, name="tags", roleArns=[], tags=too_many)
    assert (status, code) == (400, "TooManyTagsException")

    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{ra_endpoint.url}/trustanchors", timeout=10)
    assert unsigned.value.code == 403 and unsigned.value.headers["X-Amzn-ErrorType"] == "AccessDeniedException"


def test_aws_cli_drives_the_endpoint(ra_endpoint, ca, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ra_endpoint.moto.admin.access_key_id,
               AWS_SECRET_ACCESS_KEY=ra_endpoint.moto.admin.secret_access_key,
               AWS_DEFAULT_REGION=ra_endpoint.region, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    source = tmp_path / "source.json"
    source.write_text(json.dumps({"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca.pem}}))
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", ra_endpoint.url, "--output", "json", "rolesanywhere"]

    def cli(*args):
        done = subprocess.run(aws + list(args), env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr

    rc, out, err = cli("create-trust-anchor", "--name", "cli-anchor", "--source", f"file://{source}", "--enabled")
    assert rc == 0, err
    anchor_id = out["trustAnchor"]["trustAnchorId"]
    assert out["trustAnchor"]["enabled"] is True
    rc, out, err = cli("list-trust-anchors")
    assert rc == 0 and anchor_id in [a["trustAnchorId"] for a in out["trustAnchors"]], err
    rc, out, err = cli("get-trust-anchor", "--trust-anchor-id", "11111111-0000-0000-0000-000000000000")
    assert rc != 0 and "ResourceNotFoundException" in err
    rc, out, err = cli("delete-trust-anchor", "--trust-anchor-id", anchor_id)
    assert rc == 0 and out["trustAnchor"]["trustAnchorId"] == anchor_id, err


def test_crl_data_round_trips_as_bytes(ra, ca):
    anchor = ra.create_trust_anchor(
        name="bytes anchor", source={"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca.pem}}
    )["trustAnchor"]
    der = base64.b64decode(b"".join(ca.crl([7]).splitlines()[1:-1]))
    crl = ra.import_crl(name="der", crlData=der, trustAnchorArn=anchor["trustAnchorArn"])["crl"]
    assert crl["crlData"] == der and crl["enabled"] is False


def test_acm_pca_trust_anchor_reads_the_private_ca(ra, moto_server):
    pca = moto_server.client("acm-pca")
    ca_arn = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={"KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA",
                                           "Subject": {"CommonName": "moto private CA"}},
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=ca_arn)["Csr"]
    certificate_arn = pca.issue_certificate(
        CertificateAuthorityArn=ca_arn, Csr=csr, SigningAlgorithm="SHA256WITHRSA",
        TemplateArn="arn:aws:acm-pca:::template/RootCACertificate/V1", Validity={"Value": 30, "Type": "DAYS"},
    )["CertificateArn"]
    root = pca.get_certificate(CertificateAuthorityArn=ca_arn, CertificateArn=certificate_arn)["Certificate"]
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=ca_arn, Certificate=root)

    anchor = ra.create_trust_anchor(name="private ca", enabled=True,
                                    source={"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": ca_arn}})["trustAnchor"]
    assert anchor["source"] == {"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": ca_arn}}
    missing = ca_arn[:-12] + "000000000000"
    status, code, message = error_of(ra.create_trust_anchor, name="no such ca",
                                     source={"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": missing}})
    assert (status, code) == (400, "ValidationException") and missing in message
    ra.delete_trust_anchor(trustAnchorId=anchor["trustAnchorId"])


def test_boto3_reaches_every_model_operation(ra_endpoint, ca):
    """One pass over every operation botocore's model defines, each answered with its modelled status."""
    client = ra_endpoint.client()
    seen = {}
    client.meta.events.register(
        "after-call.rolesanywhere", lambda model, http_response, **_: seen.__setitem__(model.name, http_response.status_code))
    source = {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca.pem}}
    anchor = client.create_trust_anchor(name="tour", source=source)["trustAnchor"]
    anchor_id = anchor["trustAnchorId"]
    client.get_trust_anchor(trustAnchorId=anchor_id)
    client.update_trust_anchor(trustAnchorId=anchor_id, name="tour2")
    client.enable_trust_anchor(trustAnchorId=anchor_id)
    client.disable_trust_anchor(trustAnchorId=anchor_id)
    client.list_trust_anchors()
    client.put_notification_settings(trustAnchorId=anchor_id, notificationSettings=[
        {"enabled": True, "event": "END_ENTITY_CERTIFICATE_EXPIRY", "threshold": 20}])
    client.reset_notification_settings(trustAnchorId=anchor_id, notificationSettingKeys=[
        {"event": "END_ENTITY_CERTIFICATE_EXPIRY"}])
    profile_id = client.create_profile(name="tour", roleArns=[])["profile"]["profileId"]
    client.get_profile(profileId=profile_id)
    client.update_profile(profileId=profile_id, durationSeconds=900)
    client.enable_profile(profileId=profile_id)
    client.disable_profile(profileId=profile_id)
    client.list_profiles()
    client.put_attribute_mapping(profileId=profile_id, certificateField="x509Issuer", mappingRules=[{"specifier": "CN"}])
    client.delete_attribute_mapping(profileId=profile_id, certificateField="x509Issuer")
    crl_id = client.import_crl(name="tour", crlData=ca.crl([5]), trustAnchorArn=anchor["trustAnchorArn"])["crl"]["crlId"]
    client.get_crl(crlId=crl_id)
    client.update_crl(crlId=crl_id, name="tour2")
    client.enable_crl(crlId=crl_id)
    client.disable_crl(crlId=crl_id)
    client.list_crls()
    client.tag_resource(resourceArn=anchor["trustAnchorArn"], tags=[{"key": "a", "value": "b"}])
    client.list_tags_for_resource(resourceArn=anchor["trustAnchorArn"])
    client.untag_resource(resourceArn=anchor["trustAnchorArn"], tagKeys=["a"])
    status, session = create_session(ra_endpoint, *ca.issue(cn="tour.example.test"), provision(ra_endpoint, ca.pem))
    assert status == 201
    listed = [s["subjectArn"] for page in client.get_paginator("list_subjects").paginate() for s in page["subjects"]]
    assert session["subjectArn"] in listed
    client.get_subject(subjectId=session["subjectArn"].rsplit("/", 1)[1])
    client.delete_crl(crlId=crl_id)
    client.delete_profile(profileId=profile_id)
    client.delete_trust_anchor(trustAnchorId=anchor_id)

    model = botocore.session.get_session().get_service_model("rolesanywhere")
    assert set(model.operation_names) - set(seen) == set()
    for name, status in seen.items():
        assert status == model.operation_model(name).http.get("responseCode", 200), name
