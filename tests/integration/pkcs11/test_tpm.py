"""The TPM path: tpm2-pkcs11 on swtpm behind tpm2-abrmd, driven by the modules as real processes."""
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.pkcs11.helpers import openssl_req_text, openssl_req_verify, private_key_objects
from tests.support.ansible import run_module
from tests.support.tokens import TPM2_MODULE

pytestmark = pytest.mark.tpm

SUBJECT = {"O": "Example", "OU": "fleet", "CN": "tpm-host"}


def _lockout_counter(swtpm):
    out = swtpm.tool(["tpm2_getcap", "properties-variable"]).stdout
    return int(re.search(r"TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-fA-F]+|\d+)", out).group(1), 0)


def test_tpm_token_check_apply_rerun(swtpm, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    args = dict(module_path=TPM2_MODULE, token_label="ra-tpm-new", so_pin="11223344", user_pin="5566",
                token_env=dict(swtpm.env, TPM2_PKCS11_STORE=str(store)))
    checked = run_module("pkcs11_token", args, check_mode=True)
    assert checked.changed and not checked.failed, checked.get("msg")
    no_pins = run_module("pkcs11_token", dict(args, so_pin=None, user_pin=None), check_mode=True)
    assert no_pins.failed and "does not exist" in no_pins["msg"]
    applied = run_module("pkcs11_token", args)
    assert applied.changed and applied["label"] == "ra-tpm-new" and applied["user_pin_initialized"]
    assert applied["manufacturer"] == "IBM"  # swtpm reports IBM as the TPM manufacturer
    assert not run_module("pkcs11_token", args).changed


@pytest.mark.parametrize("key,algorithm", [
    (dict(), "ecdsa-with-SHA256"), (dict(curve="secp384r1"), "ecdsa-with-SHA384"),
    (dict(key_type="rsa", size=2048), "sha256WithRSAEncryption"),
])
def test_tpm_key_and_csr_check_apply_rerun(tpm_token, tmp_path, key, algorithm):
    key_args = tpm_token.module_args(label="ra-client", id="0a", **key)
    checked = run_module("pkcs11_key", key_args, check_mode=True)
    assert checked.changed and not checked.failed, checked.get("msg")
    assert private_key_objects(tpm_token) == {}
    applied = run_module("pkcs11_key", key_args)
    assert applied.changed, applied.get("msg")
    assert applied["attributes"] == dict(sensitive=True, extractable=False, always_sensitive=True,
                                         never_extractable=True, local=True, token=True, private=True)
    assert "never extractable" in private_key_objects(tpm_token)["ra-client"]
    assert not run_module("pkcs11_key", key_args).changed

    path = tmp_path / "tpm.csr"
    csr_args = tpm_token.module_args(label="ra-client", subject=SUBJECT, path=str(path))
    assert run_module("pkcs11_csr", csr_args, check_mode=True).changed and not path.exists()
    written = run_module("pkcs11_csr", csr_args)
    assert written.changed, written.get("msg")
    verify = openssl_req_verify(path)
    assert verify.returncode == 0 and "verify OK" in verify.stdout + verify.stderr
    csr = x509.load_pem_x509_csr(path.read_bytes())
    assert csr.public_key() == serialization.load_pem_public_key(applied["public_key"].encode())
    assert f"Signature Algorithm: {algorithm}" in openssl_req_text(path)
    assert not run_module("pkcs11_csr", csr_args).changed


def test_tpm_wrong_pin_is_tried_once_and_right_pin_still_works(tpm_token, swtpm):
    assert _lockout_counter(swtpm) == 0
    wrong = run_module("pkcs11_key", tpm_token.module_args(label="k", pin="0000"))
    assert wrong.failed and "was rejected" in wrong["msg"] and "not retried" in wrong["msg"]
    assert _lockout_counter(swtpm) == 1  # exactly one failed authorisation reached the TPM
    right = run_module("pkcs11_key", tpm_token.module_args(label="k"))
    assert right.changed and not right.failed, right.get("msg")
    assert _lockout_counter(swtpm) == 1


def test_tpm_unknown_label_and_bad_types(tpm_token):
    unknown = run_module("pkcs11_key", tpm_token.module_args(label="k", token_label="not-there"))
    assert unknown.failed and "no token labelled 'not-there'" in unknown["msg"]
    bad_id = run_module("pkcs11_key", tpm_token.module_args(label="k", id=[1]))
    assert bad_id.failed and bad_id["rc"] == 1 and "id must be a hex string" in bad_id["msg"]
    assert private_key_objects(tpm_token) == {}


def test_tpm_certificate_object_next_to_key(tpm_token):
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11

    with _pkcs11.open_token_session(tpm_token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "cert-key", "ec", "secp384r1")
        key = _pkcs11.token_private_key(session, "cert-key")
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tpm self-signed")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA384()))
        cert.verify_directly_issued_by(cert)
        assert _pkcs11.store_certificate(session, cert, "cert-key", keypair.key_id)
        assert _pkcs11.find_certificates(session, "cert-key") == [cert.public_bytes(serialization.Encoding.DER)]
