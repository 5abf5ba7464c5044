"""x509_ca: CA certificates with the key in a file (RSA-3072, P-384) or on a SoftHSM2 token (P-384)."""
import datetime
import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.ansible import run_module

SUBJECT = {"O": "Example", "OU": "platform", "CN": "Example RA CA"}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def load(path):
    return x509.load_pem_x509_certificate(open(path, "rb").read())


def check_ca_profile(cert_path):
    """Independent checks: openssl accepts the self-signed CA strictly; x509_check role=ca reports nothing."""
    proc = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(cert_path), str(cert_path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = run_module("x509_check", {"path": str(cert_path), "role": "ca"})
    assert check["ok"] is True and check["violations"] == [], check


@pytest.mark.parametrize("key_args, key_class, hash_class, bits", [
    ({"key_type": "rsa", "size": 3072}, rsa.RSAPrivateKey, hashes.SHA256, 3072),
    ({"key_type": "ec", "curve": "secp384r1"}, ec.EllipticCurvePrivateKey, hashes.SHA384, 384),
])
def test_file_key_ca_check_apply_rerun(tmp_path, key_args, key_class, hash_class, bits):
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key"), "passphrase": "s3cret"},
                subject=SUBJECT, validity_days=1000, **key_args)

    check = run_module("x509_ca", args, check_mode=True, diff=True)
    assert check.changed and check["key_created"] and check["reasons"] == ["no CA certificate at path"]
    assert check["diff"]["before"] == {} and check["diff"]["after"]["subject"] == "CN=Example RA CA,OU=platform,O=Example"
    assert not (tmp_path / "ca.pem").exists() and not (tmp_path / "ca.key").exists()

    applied = run_module("x509_ca", args, diff=True)
    assert applied.changed and not applied.failed, applied
    assert mode(tmp_path / "ca.key") == 0o600 and mode(tmp_path / "ca.pem") == 0o644
    key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), b"s3cret")
    assert isinstance(key, key_class) and key.key_size == bits
    with pytest.raises(TypeError):  # encrypted: unusable without the passphrase
        serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    cert = load(tmp_path / "ca.pem")
    assert isinstance(cert.signature_hash_algorithm, hash_class)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > datetime.timedelta(days=999)
    assert applied["subject_key_identifier"] == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest.hex()
    assert applied["certificate"] == (tmp_path / "ca.pem").read_text()
    check_ca_profile(tmp_path / "ca.pem")

    before = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca.key").read_bytes()
    rerun = run_module("x509_ca", args, diff=True)
    assert not rerun.changed and rerun["reasons"] == [] and not rerun["key_created"]
    assert rerun["diff"]["before"] == rerun["diff"]["after"]
    assert ((tmp_path / "ca.pem").read_bytes(), (tmp_path / "ca.key").read_bytes()) == before
    assert not run_module("x509_ca", args, check_mode=True).changed


def test_ca_renewal_keeps_key_and_subject(tmp_path):
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key")}, subject=SUBJECT,
                validity_days=40, renew_before_days=10)
    first = run_module("x509_ca", args)
    assert first.changed
    # The same certificate is now "near expiry" for a 50-day window: renewed with the same key and subject.
    renewed = run_module("x509_ca", dict(args, validity_days=400, renew_before_days=50))
    assert renewed.changed and any("renew_before_days" in r for r in renewed["reasons"]), renewed
    assert renewed["serial"] != first["serial"]
    assert renewed["subject_key_identifier"] == first["subject_key_identifier"]
    assert not renewed["key_created"]
    # A changed subject is a new CA certificate too.
    moved = run_module("x509_ca", dict(args, subject={"CN": "Other CA"}))
    assert moved.changed and any("subject" in r for r in moved["reasons"])


def test_ca_fixes_file_modes(tmp_path):
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key")}, subject=SUBJECT)
    assert run_module("x509_ca", args).changed
    os.chmod(tmp_path / "ca.key", 0o644)
    os.chmod(tmp_path / "ca.pem", 0o600)
    assert run_module("x509_ca", args, check_mode=True).changed
    assert mode(tmp_path / "ca.key") == 0o644  # check mode changed nothing
    fixed = run_module("x509_ca", args)
    assert fixed.changed and fixed["reasons"] == []
    assert mode(tmp_path / "ca.key") == 0o600 and mode(tmp_path / "ca.pem") == 0o644
    assert not run_module("x509_ca", args).changed


def test_token_key_ca_p384(tmp_path, token_ca):
    token, key_option = token_ca
    args = dict(path=str(tmp_path / "ca.pem"), key=key_option, subject=SUBJECT)
    check = run_module("x509_ca", args, check_mode=True)
    assert check.changed and not check["key_created"], check
    assert not (tmp_path / "ca.pem").exists()
    applied = run_module("x509_ca", args)
    assert applied.changed, applied
    cert = load(tmp_path / "ca.pem")
    assert cert.public_key().curve.name == "secp384r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    check_ca_profile(tmp_path / "ca.pem")
    assert token.pin not in applied["raw_stdout"]
    assert not run_module("x509_ca", args).changed


def test_bad_inputs_change_nothing(tmp_path, token_ca):
    token, key_option = token_ca
    base = dict(path=str(tmp_path / "ca.pem"), subject=SUBJECT)
    cases = [
        (dict(base, key={"path": str(tmp_path / "ca.key"), "module_path": token.module_path}), "not both"),
        (dict(base, key={"passphrase": "x"}), "no path"),
        (dict(base, key={"path": str(tmp_path / "ca.key")}, subject={"XX": "y"}), "Unknown subject attribute"),
        (dict(base, key={"path": str(tmp_path / "ca.key")}, create_key=False), "create_key"),
        (dict(base, key=dict(key_option, id="zz")), "not hex"),
        (dict(base, key=dict(key_option, label="no-such-key")), "no private key labelled"),
        (dict(base, key=dict(key_option, token_label="no-such-token")), "no token labelled"),
        (dict(base, key={"path": str(tmp_path / "ca.key")}, validity_days=10), "renew_before_days"),
        (dict(base, path=str(tmp_path / "missing" / "ca.pem"), key={"path": str(tmp_path / "ca.key")}),
         "does not exist"),
    ]
    for args, expected in cases:
        result = run_module("x509_ca", args)
        assert result.failed and expected in result["msg"], (args, result)
        assert token.pin not in result["raw_stdout"]
    assert sorted(os.listdir(tmp_path)) == ["softhsm"]


def test_wrong_passphrase_and_unencrypted_key(tmp_path):
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key"), "passphrase": "right"},
                subject=SUBJECT)
    assert run_module("x509_ca", args).changed
    os.unlink(tmp_path / "ca.pem")
    wrong = run_module("x509_ca", dict(args, key={"path": str(tmp_path / "ca.key"), "passphrase": "Zq-731-xyz"}))
    assert wrong.failed and "wrong passphrase" in wrong["msg"]
    assert "Zq-731-xyz" not in wrong["raw_stdout"] + wrong["stderr"]
    missing = run_module("x509_ca", dict(args, key={"path": str(tmp_path / "ca.key")}))
    assert missing.failed and "is encrypted" in missing["msg"]
    assert not (tmp_path / "ca.pem").exists()


@pytest.mark.tpm
def test_ca_key_on_tpm(tmp_path, tpm_token):
    """The CA key generated on a (software) TPM through tpm2-pkcs11; the CA issues a client certificate."""
    key = run_module("pkcs11_key", tpm_token.module_args(label="tpm-ca", key_type="ec", curve="secp384r1"))
    assert key.changed and not key.failed, key
    key_option = tpm_token.module_args(label="tpm-ca")
    args = dict(path=str(tmp_path / "ca.pem"), key=key_option, subject={"CN": "TPM CA"})
    assert run_module("x509_ca", args, check_mode=True).changed and not (tmp_path / "ca.pem").exists()
    assert run_module("x509_ca", args).changed
    check_ca_profile(tmp_path / "ca.pem")
    assert not run_module("x509_ca", args).changed

    from tests.integration.x509.builders import ec_key, make_csr, name, pem
    from tests.support.ca import openssl_verify_client

    issue = dict(csr=pem(make_csr(ec_key(), name(O="Example", CN="tpm-client"))), path=str(tmp_path / "leaf.pem"),
                 ca_cert_path=str(tmp_path / "ca.pem"), ca_key=key_option)
    assert run_module("x509_issue", issue).changed
    assert openssl_verify_client(tmp_path / "ca.pem", tmp_path / "leaf.pem").returncode == 0
    assert not run_module("x509_issue", issue).changed


def test_missing_key_file_does_not_replace_the_ca(tmp_path):
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key")}, subject=SUBJECT)
    assert run_module("x509_ca", args).changed
    before = (tmp_path / "ca.pem").read_bytes()
    typo = dict(args, key={"path": str(tmp_path / "ca-typo.key")})
    refused = run_module("x509_ca", typo)
    assert refused.failed and "restore the key" in refused["msg"], refused
    assert (tmp_path / "ca.pem").read_bytes() == before and not (tmp_path / "ca-typo.key").exists()
    replaced = run_module("x509_ca", dict(typo, force=True))
    assert replaced.changed and replaced["key_created"] and (tmp_path / "ca-typo.key").exists()
    assert (tmp_path / "ca.pem").read_bytes() != before


def test_certificate_of_another_key_is_refused(tmp_path, make_file_ca):
    other = make_file_ca(tmp_path / "other")
    args = dict(path=str(tmp_path / "ca.pem"), key={"path": str(tmp_path / "ca.key")}, subject=SUBJECT)
    assert run_module("x509_ca", args).changed
    before = (tmp_path / "ca.pem").read_bytes()
    wrong_key = dict(args, key=other.key_option())
    for check_mode in (True, False):
        refused = run_module("x509_ca", wrong_key, check_mode=check_mode)
        assert refused.failed and "does not belong to the given CA key" in refused["msg"], refused
    assert (tmp_path / "ca.pem").read_bytes() == before
    replaced = run_module("x509_ca", dict(wrong_key, force=True))
    assert replaced.changed and "the certificate's public key is not the CA key's" in replaced["reasons"]
