"""x509_check: each Roles Anywhere rule is reported on a certificate built to break it."""
import datetime

import pytest

from tests.integration.x509.builders import NOW, ec_key, leaf, openssl_leaf, pem
from tests.support.ansible import run_module
from tests.support.ca import issue_client_cert

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca


def violations(result):
    return {v["rule"]: v for v in result["violations"]}


def run_check(path, role="client", **extra):
    result = run_module("x509_check", dict(path=str(path), role=role, **extra), check_mode=True)
    assert not result.failed and not result.changed, result
    return result


def test_good_client_and_ca_pass(tmp_path, file_ca):
    leaf_path = tmp_path / "good.pem"
    issue_client_cert(file_ca, ec_key().public_key(), subject={"O": "Example", "CN": "good"}, path=leaf_path)
    result = run_check(leaf_path, ca_cert_path=str(file_ca.cert_path))
    assert result["ok"] and result["violations"] == []
    assert result["subject"] == "CN=good,O=Example"
    ca_result = run_check(file_ca.cert_path, role="ca")
    assert ca_result["ok"] and ca_result["violations"] == []
    # The CA used as a client certificate, and the client as a CA, both fail with the matching rules.
    assert {"basic_constraints_ca_false"} <= violations(run_check(file_ca.cert_path)).keys()
    as_ca = violations(run_check(leaf_path, role="ca"))
    assert {"basic_constraints_ca_true", "key_usage_key_cert_sign", "key_usage_crl_sign"} <= as_ca.keys()


@pytest.mark.parametrize("case, rule", [
    ("ca_true_leaf", "basic_constraints_ca_false"),
    ("no_basic_constraints", "basic_constraints_missing"),
    ("no_digital_signature", "key_usage_digital_signature"),
    ("expired", "validity_expired"),
    ("not_yet_valid", "validity_not_yet_valid"),
    ("sha1", "signature_hash"),
    ("md5", "signature_hash"),
    ("rsa1024", "rsa_key_size"),
    ("v1", "version_v3"),
])
def test_each_violation_is_reported(tmp_path, file_ca, case, rule):
    builders = {
        "ca_true_leaf": lambda: leaf(file_ca.cert, file_ca.key, ca=True),
        "no_basic_constraints": lambda: leaf(file_ca.cert, file_ca.key, basic_constraints=False),
        "no_digital_signature": lambda: leaf(file_ca.cert, file_ca.key, digital_signature=False),
        "expired": lambda: leaf(file_ca.cert, file_ca.key, not_before=NOW - datetime.timedelta(days=60),
                                not_after=NOW - datetime.timedelta(days=1)),
        "not_yet_valid": lambda: leaf(file_ca.cert, file_ca.key, not_before=NOW + datetime.timedelta(days=2)),
        "sha1": lambda: openssl_leaf(tmp_path, "rsa:2048", "sha1"),
        "md5": lambda: openssl_leaf(tmp_path, "rsa:2048", "md5"),
        "rsa1024": lambda: openssl_leaf(tmp_path, "rsa:1024", "sha256"),
        "v1": lambda: openssl_leaf(tmp_path, "ec:P-256", "sha256", version3=False),
    }
    made = builders[case]()
    if isinstance(made, type(tmp_path)):
        path = made
    else:
        path = tmp_path / "bad.pem"
        path.write_text(pem(made))
    result = run_check(path)
    found = violations(result)
    assert result["ok"] is False and rule in found, result
    assert found[rule]["severity"] == "error" and found[rule]["fix"] and found[rule]["message"]
    # Nothing else is blamed on the certificates built from the good profile with one rule broken.
    if case in ("ca_true_leaf", "no_digital_signature", "expired", "not_yet_valid", "no_basic_constraints"):
        assert set(found) == {rule}, found


def test_warnings_do_not_fail(tmp_path, file_ca):
    path = tmp_path / "no-eku.pem"
    path.write_text(pem(leaf(file_ca.cert, file_ca.key, eku=False)))
    result = run_check(path)
    assert result["ok"] is True
    assert [(v["rule"], v["severity"]) for v in result["violations"]] == [("extended_key_usage_client_auth", "warning")]


def test_wrong_issuer_and_content_input(tmp_path, file_ca, make_file_ca):
    other = make_file_ca(tmp_path / "other")
    cert = issue_client_cert(other, ec_key().public_key(), subject={"CN": "elsewhere"})
    result = run_module("x509_check", dict(content=pem(cert), ca_cert_path=str(file_ca.cert_path)))
    assert not result["ok"] and set(violations(result)) == {"issuer_signature"}
    # An expired CA is reported for role=ca too.
    past = NOW - datetime.timedelta(days=400)
    expired = tmp_path / "expired-ca.pem"
    expired.write_bytes(_ca.pem(_ca.build_ca_certificate(file_ca.key, file_ca.cert.subject, 30, now=past)))
    assert set(violations(run_check(expired, role="ca"))) == {"validity_expired"}
    missing = run_module("x509_check", dict(path=str(tmp_path / "nope.pem")))
    assert missing.failed and "does not exist" in missing["msg"]
    garbage = run_module("x509_check", dict(content="not a certificate"))
    assert garbage.failed and "not a PEM or DER certificate" in garbage["msg"]
