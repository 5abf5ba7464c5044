"""x509_issue: client certificates from CSRs, checked by openssl; refusals change nothing."""
import datetime
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.x509.builders import ec_key, make_csr, name, openssl_csr, pem, tamper_csr
from tests.support.ansible import run_module
from tests.support.ca import openssl_verify_client

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca


def issue_args(ca, tmp_path, csr_pem, **extra):
    args = dict(csr=csr_pem, path=str(tmp_path / "leaf.pem"), ca_cert_path=str(ca.cert_path),
                ca_key=ca.key_option(), validity_days=90, renew_before_days=30)
    args.update(extra)
    return args


def test_issue_check_apply_rerun(tmp_path, file_ca):
    key = ec_key()
    csr = make_csr(key, name(O="Example", OU="fleet", CN="host1"), sans=["host1.example.org"])
    args = issue_args(file_ca, tmp_path, pem(csr), require_subject=["CN", "OU"])

    check = run_module("x509_issue", args, check_mode=True, diff=True)
    assert check.changed and check["reasons"] == ["no certificate at path"], check
    assert check["diff"]["before"] == {} and check["diff"]["after"]["subject"] == "CN=host1,OU=fleet,O=Example"
    assert not (tmp_path / "leaf.pem").exists() and not file_ca.database_path.exists()

    applied = run_module("x509_issue", args, diff=True)
    assert applied.changed, applied
    leaf_path = tmp_path / "leaf.pem"
    assert stat.S_IMODE(os.stat(leaf_path).st_mode) == 0o644
    verified = openssl_verify_client(file_ca.cert_path, leaf_path)
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stdout + verified.stderr

    cert = x509.load_pem_x509_certificate(leaf_path.read_bytes())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.serial_number.bit_length() == 159 and applied["serial"] == format(cert.serial_number, "x")
    assert applied["serial_decimal"] == str(cert.serial_number)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)  # P-384 CA
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == file_ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["host1.example.org"]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=90) <= lifetime <= datetime.timedelta(days=90, minutes=6)
    check_leaf = run_module("x509_check", {"path": str(leaf_path), "ca_cert_path": str(file_ca.cert_path)})
    assert check_leaf["ok"] and check_leaf["violations"] == [], check_leaf

    database = json.loads(file_ca.database_path.read_text())
    assert stat.S_IMODE(os.stat(file_ca.database_path).st_mode) == 0o600
    assert database["certificates"] == [dict(
        serial=applied["serial"], subject="CN=host1,OU=fleet,O=Example",
        not_after=cert.not_valid_after_utc.isoformat(), status="issued", revocation_date=None,
        revocation_reason=None)]

    rerun = run_module("x509_issue", args, diff=True)
    assert not rerun.changed and rerun["serial"] == applied["serial"] and rerun["reasons"] == []
    assert rerun["diff"]["before"] == rerun["diff"]["after"]
    assert not run_module("x509_issue", args, check_mode=True).changed
    assert len(json.loads(file_ca.database_path.read_text())["certificates"]) == 1

    # A new key (rotation) or a short remaining life means a new certificate.
    rekeyed = run_module("x509_issue", dict(args, csr=pem(make_csr(ec_key(), csr.subject))))
    assert rekeyed.changed and "its public key is not the CSR's" in rekeyed["reasons"]
    short_args = dict(args, csr=pem(make_csr(ec_key(), csr.subject)), validity_days=20, renew_before_days=10)
    assert run_module("x509_issue", short_args).changed
    assert not run_module("x509_issue", short_args).changed
    near_expiry = run_module("x509_issue", dict(short_args, validity_days=90, renew_before_days=25))
    assert near_expiry.changed and near_expiry["reasons"][0].endswith("within renew_before_days"), near_expiry
    assert len(json.loads(file_ca.database_path.read_text())["certificates"]) == 4


def test_issue_from_csr_file_with_rsa_ca(tmp_path, make_rsa_ca):
    ca = make_rsa_ca
    csr = make_csr(ec_key(), name(O="Example", CN="rsa-host"))
    (tmp_path / "host.csr").write_text(pem(csr))
    args = dict(csr_path=str(tmp_path / "host.csr"), path=str(tmp_path / "leaf.pem"),
                ca_cert_path=str(ca.cert_path), ca_key=ca.key_option())
    assert run_module("x509_issue", args).changed
    cert = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert openssl_verify_client(ca.cert_path, tmp_path / "leaf.pem").returncode == 0
    assert not run_module("x509_issue", args).changed


@pytest.fixture
def make_rsa_ca(tmp_path):
    from tests.support.ca import make_file_ca

    return make_file_ca(tmp_path / "rsa-ca", key_type="rsa", size=3072)


def test_issue_with_token_ca(tmp_path, token_ca):
    token, key_option = token_ca
    ca_args = dict(path=str(tmp_path / "ca.pem"), key=key_option, subject={"CN": "Token CA"})
    assert run_module("x509_ca", ca_args).changed
    args = dict(csr=pem(make_csr(ec_key(), name(O="Example", CN="tok-host"))), path=str(tmp_path / "leaf.pem"),
                ca_cert_path=str(tmp_path / "ca.pem"), ca_key=key_option)
    assert run_module("x509_issue", args, check_mode=True).changed
    assert not (tmp_path / "leaf.pem").exists()
    applied = run_module("x509_issue", args)
    assert applied.changed, applied
    assert openssl_verify_client(tmp_path / "ca.pem", tmp_path / "leaf.pem").returncode == 0
    assert not run_module("x509_issue", args).changed


def test_refusals_change_nothing(tmp_path, file_ca, make_file_ca):
    good_key = ec_key()
    subject = name(O="Example", OU="fleet", CN="host2")
    other_ca = make_file_ca(tmp_path / "other-ca")
    expired_dir = tmp_path / "expired-ca"
    expired_dir.mkdir()
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=400)
    expired = _ca.build_ca_certificate(file_ca.key, file_ca.cert.subject, 30, now=past)
    (expired_dir / "ca.pem").write_bytes(_ca.pem(expired))

    cases = {
        "csr_requests_ca": issue_args(file_ca, tmp_path, pem(make_csr(good_key, subject, ca=True))),
        "signature_hash": issue_args(file_ca, tmp_path, openssl_csr(tmp_path, "rsa:2048", "sha1")),
        "rsa_key_size": issue_args(file_ca, tmp_path, openssl_csr(tmp_path, "rsa:1024", "sha256")),
        "ec_curve": issue_args(file_ca, tmp_path, pem(make_csr(ec.generate_private_key(ec.SECP521R1()), subject,
                                                               digest=hashes.SHA512))),
        "csr_signature": issue_args(file_ca, tmp_path, tamper_csr(pem(make_csr(good_key, subject)))),
        "csr_subject_missing": issue_args(file_ca, tmp_path, pem(make_csr(good_key, name(O="Example", CN="x"))),
                                          require_subject=["CN", "OU"]),
        "does not belong to the CA key": issue_args(file_ca, tmp_path, pem(make_csr(good_key, subject)),
                                                    ca_cert_path=str(other_ca.cert_path)),
        "validity_expired": issue_args(file_ca, tmp_path, pem(make_csr(good_key, subject)),
                                       ca_cert_path=str(expired_dir / "ca.pem")),
        "cannot be parsed": issue_args(file_ca, tmp_path, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                                          "-----END CERTIFICATE REQUEST-----\n"),
        "unknown attributes": issue_args(file_ca, tmp_path, pem(make_csr(good_key, subject)),
                                         require_subject=["XX"]),
    }
    for expected, args in cases.items():
        result = run_module("x509_issue", args)
        assert result.failed, (expected, result)
        if " " in expected:  # a plain message
            assert expected in result["msg"], (expected, result)
        else:  # a named rule: "[rule] what is wrong. Fix: what to do"
            assert f"[{expected}]" in result["msg"] and "Fix:" in result["msg"], (expected, result)
        assert not (tmp_path / "leaf.pem").exists(), expected
    assert not file_ca.database_path.exists()
    assert not other_ca.database_path.exists()
    # The SHA-1 message names the rule broken and the fix.
    sha1 = run_module("x509_issue", cases["signature_hash"])
    assert "SHA-1" in sha1["msg"] and "SHA-256" in sha1["msg"]


def test_parallel_issuance_keeps_every_record(tmp_path, file_ca):
    """Forks issuing from one CA at once (delegate_to the CA host) must not lose database records."""
    from concurrent.futures import ThreadPoolExecutor

    def issue_one(index):
        csr = make_csr(ec_key(), name(O="Example", CN=f"par-{index}"))
        return run_module("x509_issue", issue_args(file_ca, tmp_path, pem(csr), path=str(tmp_path / f"{index}.pem")))

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(issue_one, range(6)))
    assert all(r.changed and not r.failed for r in results), results
    recorded = json.loads(file_ca.database_path.read_text())["certificates"]
    assert sorted(e["serial"] for e in recorded) == sorted(r["serial"] for r in results)
    assert len({e["serial"] for e in recorded}) == 6


def test_missing_ca_certificate(tmp_path, file_ca):
    args = issue_args(file_ca, tmp_path, pem(make_csr(ec_key(), name(CN="early"))),
                      ca_cert_path=str(tmp_path / "not-yet" / "ca.pem"))
    # Check mode of a play whose earlier task creates the CA: a change is announced, nothing is written.
    planned = run_module("x509_issue", args, check_mode=True)
    assert planned.changed and not planned.failed and "does not exist yet" in planned["reasons"][0], planned
    applied = run_module("x509_issue", args)
    assert applied.failed and "create it with x509_ca first" in applied["msg"]
    assert not (tmp_path / "leaf.pem").exists()


def test_token_key_csr_to_certificate(tmp_path, file_ca, softhsm_token):
    """The pipeline of the issue: key on the token (pkcs11_key), CSR signed there (pkcs11_csr), issue, verify."""
    key = run_module("pkcs11_key", softhsm_token.module_args(label="client", key_type="ec", curve="secp256r1"))
    assert key.changed, key
    csr = run_module("pkcs11_csr", softhsm_token.module_args(
        label="client", subject={"O": "Example", "OU": "fleet", "CN": "token-host"},
        subject_alt_name=["DNS:token-host.example.org"], path=str(tmp_path / "client.csr")))
    assert csr.changed, csr
    args = dict(csr_path=str(tmp_path / "client.csr"), path=str(tmp_path / "client.pem"),
                ca_cert_path=str(file_ca.cert_path), ca_key=file_ca.key_option(), require_subject=["CN", "OU"])
    assert run_module("x509_issue", args).changed
    verified = openssl_verify_client(file_ca.cert_path, tmp_path / "client.pem")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "client.pem").read_bytes())
    assert _ca.same_public_key(cert.public_key(), serialization.load_pem_public_key(key["public_key"].encode()))
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["token-host.example.org"]
    assert not run_module("x509_issue", args).changed
