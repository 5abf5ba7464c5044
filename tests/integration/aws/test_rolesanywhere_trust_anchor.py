"""rolesanywhere_trust_anchor against ra_local: check mode -> apply -> idempotence -> update (diff) -> delete."""
from tests.support.ansible import run_module
from tests.support.ca import issue_client_cert, make_file_ca


def anchors_named(boto, name):
    return [a for a in boto("rolesanywhere").list_trust_anchors()["trustAnchors"] if a["name"] == name]


def test_bundle_anchor_lifecycle(ra_conn, boto, file_ca, tmp_path):
    args = dict(ra_conn, name="awsside-own-ca", certificate_bundle=file_ca.pem(), tags={"env": "test"})

    checked = run_module("rolesanywhere_trust_anchor", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert checked["trust_anchor"]["certificates"][0]["subject"] == file_ca.cert.subject.rfc4514_string()
    assert anchors_named(boto, "awsside-own-ca") == []

    applied = run_module("rolesanywhere_trust_anchor", args, diff=True)
    assert applied.changed and not applied.failed, applied
    [anchor] = anchors_named(boto, "awsside-own-ca")
    assert anchor["enabled"] and anchor["source"]["sourceType"] == "CERTIFICATE_BUNDLE"
    assert anchor["trustAnchorArn"] == applied["trust_anchor"]["trust_anchor_arn"]
    predicted = {k: v for k, v in checked["trust_anchor"].items() if not k.startswith("trust_anchor_")}
    assert predicted == {k: v for k, v in applied["trust_anchor"].items() if not k.startswith("trust_anchor_")}

    again = run_module("rolesanywhere_trust_anchor", args, diff=True)
    assert not again.changed and not again.failed, again

    other_ca = make_file_ca(tmp_path / "other", subject={"CN": "Second CA"})
    update = dict(args, certificate_bundle=other_ca.pem(), enabled=False, tags={"env": "prod"},
                  notification_settings=[{"event": "CA_CERTIFICATE_EXPIRY", "threshold": 90}])
    updated = run_module("rolesanywhere_trust_anchor", update, diff=True)
    assert updated.changed and not updated.failed, updated
    before, after = updated["diff"]["before"], updated["diff"]["after"]
    assert before["certificates"][0]["subject"] != after["certificates"][0]["subject"] == "CN=Second CA"
    assert (before["enabled"], after["enabled"]) == (True, False)
    assert after["notification_settings"]["CA_CERTIFICATE_EXPIRY"]["threshold"] == 90
    assert after["tags"] == {"env": "prod"}
    [anchor] = anchors_named(boto, "awsside-own-ca")
    assert not anchor["enabled"] and "Second CA" in str(updated["trust_anchor"]["certificates"])
    assert not run_module("rolesanywhere_trust_anchor", update).changed

    absent = dict(ra_conn, name="awsside-own-ca", state="absent")
    assert run_module("rolesanywhere_trust_anchor", absent, check_mode=True).changed
    assert len(anchors_named(boto, "awsside-own-ca")) == 1
    deleted = run_module("rolesanywhere_trust_anchor", absent, diff=True)
    assert deleted.changed and deleted["diff"]["after"] == {}
    assert anchors_named(boto, "awsside-own-ca") == []
    assert not run_module("rolesanywhere_trust_anchor", absent).changed


def test_pca_anchor(ra_conn, boto, private_ca):
    ca_arn, _ = private_ca
    args = dict(ra_conn, name="awsside-pca", acm_pca_arn=ca_arn)
    applied = run_module("rolesanywhere_trust_anchor", args, diff=True)
    assert applied.changed and not applied.failed, applied
    [anchor] = anchors_named(boto, "awsside-pca")
    assert anchor["source"] == {"sourceType": "AWS_ACM_PCA", "sourceData": {"acmPcaArn": ca_arn}}
    assert not run_module("rolesanywhere_trust_anchor", args).changed
    assert run_module("rolesanywhere_trust_anchor", dict(args, state="absent")).changed


def test_bad_bundles_change_nothing(ra_conn, boto, file_ca):
    leaf = issue_client_cert(file_ca, file_ca.key.public_key(), subject={"CN": "host1"}, record=False)
    from cryptography.hazmat.primitives import serialization
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    for bundle, expected in ((leaf_pem, "not a CA certificate"), ("garbage", "not a PEM certificate bundle"),
                             (file_ca.pem() * 12, "at most 8000")):
        result = run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-bad", certificate_bundle=bundle))
        assert result.failed and expected in result["msg"], result
    assert anchors_named(boto, "awsside-bad") == []
