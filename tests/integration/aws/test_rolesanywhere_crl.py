"""rolesanywhere_crl against ra_local: check mode -> import -> idempotence -> update (diff) -> delete; foreign CRLs
refused; an imported CRL makes the endpoint refuse the revoked certificate."""
import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.ansible import run_module
from tests.support.ca import issue_client_cert, make_file_ca
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca, _sigv4x509


def crl_of(ca, revoked=(), number=1):
    entries = [{"serial": _ca.serial_hex(cert.serial_number), "revocation_date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "revocation_reason": None} for cert in revoked]
    return _ca.build_crl(ca.cert, ca.key, entries, next_update_days=7, crl_number=number)


@pytest.fixture
def anchor_arn(ra_conn, file_ca):
    result = run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-crl-test-anchor", certificate_bundle=file_ca.pem()))
    assert not result.failed, result
    yield result["trust_anchor"]["trust_anchor_arn"]
    run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-crl-test-anchor", state="absent"))


def crls_named(boto, name):
    return [c for c in boto("rolesanywhere").list_crls()["crls"] if c["name"] == name]


def test_crl_lifecycle(ra_conn, boto, file_ca, anchor_arn, tmp_path):
    first = crl_of(file_ca)
    args = dict(ra_conn, name="awsside-crl", trust_anchor_arn=anchor_arn, crl=first.public_bytes(serialization.Encoding.PEM).decode())

    checked = run_module("rolesanywhere_crl", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed, checked
    assert checked["crl"]["revoked_serials"] == [] and checked["crl"]["crl_number"] == 1
    assert crls_named(boto, "awsside-crl") == []

    applied = run_module("rolesanywhere_crl", args, diff=True)
    assert applied.changed and not applied.failed, applied
    [record] = crls_named(boto, "awsside-crl")
    assert record["enabled"] and record["trustAnchorArn"] == anchor_arn

    assert not run_module("rolesanywhere_crl", args).changed

    # Re-issued CRL with a revoked certificate, given as a DER file: content replaced.
    leaf = issue_client_cert(file_ca, file_ca.key.public_key(), subject={"CN": "host1"}, record=False)
    der = tmp_path / "crl.der"
    der.write_bytes(crl_of(file_ca, [leaf], number=2).public_bytes(serialization.Encoding.DER))
    update = dict(ra_conn, name="awsside-crl", trust_anchor_arn=anchor_arn, crl_path=str(der), tags={"rotation": "2"})
    updated = run_module("rolesanywhere_crl", update, diff=True)
    assert updated.changed and not updated.failed, updated
    before, after = updated["diff"]["before"], updated["diff"]["after"]
    assert (before["crl_number"], after["crl_number"]) == (1, 2)
    assert after["revoked_serials"] == [_ca.serial_hex(leaf.serial_number)] and before["revoked_serials"] == []
    assert not run_module("rolesanywhere_crl", update).changed

    disabled = run_module("rolesanywhere_crl", dict(update, enabled=False), diff=True)
    assert disabled.changed and not crls_named(boto, "awsside-crl")[0]["enabled"]

    absent = dict(ra_conn, name="awsside-crl", state="absent")
    assert run_module("rolesanywhere_crl", absent, check_mode=True).changed
    assert len(crls_named(boto, "awsside-crl")) == 1
    assert run_module("rolesanywhere_crl", absent).changed
    assert crls_named(boto, "awsside-crl") == []
    assert not run_module("rolesanywhere_crl", absent).changed


def test_crl_of_another_ca_is_refused(ra_conn, boto, anchor_arn, tmp_path):
    stranger = make_file_ca(tmp_path / "stranger", subject={"CN": "Test Roles Anywhere CA", "O": "rolesanywhere.fleet tests"})
    crl = crl_of(stranger).public_bytes(serialization.Encoding.PEM).decode()
    for check_mode in (True, False):
        result = run_module("rolesanywhere_crl", dict(ra_conn, name="awsside-foreign-crl", trust_anchor_arn=anchor_arn, crl=crl),
                            check_mode=check_mode)
        assert result.failed and "is not signed by the CA of trust anchor awsside-crl-test-anchor" in result["msg"], result
    result = run_module("rolesanywhere_crl", dict(ra_conn, name="awsside-foreign-crl", trust_anchor_arn=anchor_arn, crl="junk"))
    assert result.failed and "neither a PEM nor a DER" in result["msg"], result
    assert crls_named(boto, "awsside-foreign-crl") == []


def test_crl_for_a_private_ca_anchor_is_checked_against_the_private_ca(ra_conn, boto, private_ca, file_ca):
    """For an AWS_ACM_PCA anchor the CA certificate comes from ACM PCA (moto keeps its CA key, so only a
    refusal can be shown here)."""
    anchor = run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-crl-pca-anchor", acm_pca_arn=private_ca[0]))
    assert not anchor.failed, anchor
    try:
        crl = crl_of(file_ca).public_bytes(serialization.Encoding.PEM).decode()
        result = run_module("rolesanywhere_crl", dict(ra_conn, name="awsside-pca-crl", crl=crl,
                                                      trust_anchor_arn=anchor["trust_anchor"]["trust_anchor_arn"]))
        assert result.failed and "CN=fleet test private CA" in result["msg"], result
        assert crls_named(boto, "awsside-pca-crl") == []
    finally:
        run_module("rolesanywhere_trust_anchor", dict(ra_conn, name="awsside-crl-pca-anchor", state="absent"))


def test_imported_crl_revokes_at_the_endpoint(ra_conn, iam_conn, file_ca, anchor_arn):
    role = run_module("iam_role_rolesanywhere", dict(iam_conn, name="awsside-crl-role", trust_anchor_arns=[anchor_arn]))
    profile = run_module("rolesanywhere_profile", dict(ra_conn, name="awsside-crl-profile", role_arns=[role["role"]["arn"]]))
    assert not role.failed and not profile.failed, (role, profile)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_client_cert(file_ca, key.public_key(), subject={"CN": "host-to-revoke"}, record=False)

    def session():
        return _sigv4x509.create_session(key, cert, trust_anchor_arn=anchor_arn, role_arn=role["role"]["arn"],
                                         profile_arn=profile["profile"]["profile_arn"], endpoint=ra_conn["endpoint_url"])

    try:
        assert session().access_key_id
        crl = crl_of(file_ca, [cert]).public_bytes(serialization.Encoding.PEM).decode()
        imported = run_module("rolesanywhere_crl", dict(ra_conn, name="awsside-revoking-crl", trust_anchor_arn=anchor_arn,
                                                        crl=crl))
        assert imported.changed and not imported.failed, imported
        with pytest.raises(_sigv4x509.ServiceError) as refused:
            session()
        assert refused.value.status == 403, refused.value
    finally:
        run_module("rolesanywhere_crl", dict(ra_conn, name="awsside-revoking-crl", state="absent"))
        run_module("rolesanywhere_profile", dict(ra_conn, name="awsside-crl-profile", state="absent"))
        run_module("iam_role_rolesanywhere", dict(iam_conn, name="awsside-crl-role", state="absent"))
