"""pkcs11_token, pkcs11_key and pkcs11_csr as real module processes on SoftHSM2 tokens.

Every module: check mode changes nothing -> apply -> rerun unchanged. The token is inspected with
pkcs11-tool and CSRs with openssl, not with the code under test.
"""
import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from tests.integration.pkcs11.helpers import openssl_req_text, openssl_req_verify, private_key_objects
from tests.support.ansible import run_module
from tests.support.tokens import SOFTHSM2_MODULE, make_softhsm_token

SUBJECT = {"C": "DE", "ST": "Berlin", "L": "Berlin", "O": "Example", "OU": "fleet", "CN": "host1"}


def _labels(token):
    return sorted(private_key_objects(token))


def _key_args(token, **extra):
    return token.module_args(**{"label": "ra-client", "id": "01", **extra})


# ---------------------------------------------------------------- pkcs11_token


def _show_slots(conf):
    proc = subprocess.run(["softhsm2-util", "--show-slots"], capture_output=True, text=True,
                          env={**os.environ, "SOFTHSM2_CONF": str(conf)}, timeout=30)
    return proc.stdout


def test_token_check_apply_rerun(tmp_path):
    tokendir = tmp_path / "tokens"
    tokendir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    args = dict(module_path=SOFTHSM2_MODULE, token_label="ra-new", so_pin="12345678", user_pin="24680",
                token_env={"SOFTHSM2_CONF": str(conf)})

    checked = run_module("pkcs11_token", args, check_mode=True)
    assert checked.changed and not checked.failed and checked["label"] == "ra-new"
    assert "ra-new" not in _show_slots(conf) and os.listdir(tokendir) == []

    applied = run_module("pkcs11_token", args)
    assert applied.changed and applied["label"] == "ra-new" and applied["user_pin_initialized"]
    assert applied["manufacturer"] == "SoftHSM project" and applied["model"] == "SoftHSM v2"
    assert applied["serial"] and applied["serial"] in _show_slots(conf)
    assert "24680" not in applied["raw_stdout"] and "12345678" not in applied["raw_stdout"]

    rerun = run_module("pkcs11_token", args)
    assert not rerun.changed and rerun["serial"] == applied["serial"]

    # The new token accepts the user PIN: a key can be made with it.
    token = make_softhsm_token.__globals__["Token"](SOFTHSM2_MODULE, "ra-new", "24680", "12345678",
                                                      {"SOFTHSM2_CONF": str(conf)})
    assert run_module("pkcs11_key", _key_args(token)).changed


def test_token_with_configuration_store_and_pin_file_for_a_user(tmp_path):
    """One run writes the library's configuration, creates the store, initialises the token, hands the store to
    the signing user and writes that user's PIN file; check mode before it changes nothing."""
    os.chmod(tmp_path, 0o755)
    store, conf, pin_file = tmp_path / "tokens", tmp_path / "etc" / "softhsm2.conf", tmp_path / "pin" / "token.pin"
    content = f"directories.tokendir = {store}\nobjectstore.backend = file\nlog.level = ERROR\n"
    args = dict(module_path=SOFTHSM2_MODULE, token_label="ra-user", so_pin="12345678", user_pin="24680",
                token_env={"SOFTHSM2_CONF": str(conf)}, config=dict(path=str(conf), content=content),
                store=dict(path=str(store), owner="nobody"), pin_file=dict(path=str(pin_file), owner="nobody"))

    checked = run_module("pkcs11_token", args, check_mode=True)
    assert checked.changed and not checked.failed, checked
    assert not conf.exists() and not store.exists() and not pin_file.exists()

    applied = run_module("pkcs11_token", args)
    assert applied.changed and applied["user_pin_initialized"] and "ra-user" in _show_slots(conf), applied
    assert conf.read_text() == content and stat.S_IMODE(conf.stat().st_mode) == 0o644 and conf.stat().st_uid == 0
    nobody = 65534
    assert (store.stat().st_uid, stat.S_IMODE(store.stat().st_mode)) == (nobody, 0o700)
    token_files = [p for p in store.rglob("*")]
    assert token_files and all(p.stat().st_uid == nobody for p in token_files)
    assert pin_file.read_text() == "24680"
    assert (pin_file.stat().st_uid, stat.S_IMODE(pin_file.stat().st_mode)) == (nobody, 0o600)
    assert "24680" not in applied["raw_stdout"] and "12345678" not in applied["raw_stdout"]

    rerun = run_module("pkcs11_token", args)
    assert not rerun.changed and rerun["serial"] == applied["serial"], rerun

    # A PIN file the user replaced with a link to a root-only file is refused, and the target is not touched.
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    pin_file.unlink()
    os.symlink(secret, pin_file)
    os.lchown(pin_file, nobody, nobody)
    refused = run_module("pkcs11_token", args)
    assert refused.failed and str(pin_file) in refused["msg"], refused
    assert secret.read_text() == "root only\n" and secret.stat().st_uid == 0


def test_token_preprovisioned_is_only_reported(softhsm_token):
    args = dict(module_path=softhsm_token.module_path, token_label=softhsm_token.token_label,
                token_env=softhsm_token.env)
    result = run_module("pkcs11_token", args, check_mode=True)
    assert not result.changed and result["label"] == softhsm_token.token_label
    assert not run_module("pkcs11_token", args).changed


def test_token_missing_without_so_pin_fails(softhsm_token):
    result = run_module("pkcs11_token", dict(module_path=softhsm_token.module_path, token_label="absent",
                                             token_env=softhsm_token.env))
    assert result.failed and "give so_pin and user_pin to create it" in result["msg"]


# ---------------------------------------------------------------- pkcs11_key


@pytest.mark.parametrize("extra,kind", [
    (dict(), "EC"), (dict(curve="secp384r1"), "EC"), (dict(key_type="rsa", size=2048), "RSA"),
])
def test_key_check_apply_rerun(softhsm_token, extra, kind):
    args = _key_args(softhsm_token, **extra)
    checked = run_module("pkcs11_key", args, check_mode=True, diff=True)
    assert checked.changed and not checked.failed
    assert checked["diff"]["before"] == {} and checked["diff"]["after"]["label"] == "ra-client"
    assert _labels(softhsm_token) == []

    applied = run_module("pkcs11_key", args, diff=True)
    assert applied.changed, applied.get("msg")
    assert applied["uri"] == "pkcs11:token=ra-test;id=%01;object=ra-client;type=private"
    assert applied["id"] == "01" and applied["key_type"] == kind.lower()
    assert applied["attributes"]["sensitive"] is True and applied["attributes"]["extractable"] is False
    assert applied["attributes"]["never_extractable"] is True and applied["attributes"]["always_sensitive"] is True
    public = serialization.load_pem_public_key(applied["public_key"].encode())
    assert public.key_size == applied["size"]
    listing = private_key_objects(softhsm_token)
    assert list(listing) == ["ra-client"]
    assert "never extractable" in listing["ra-client"] and kind in listing["ra-client"]

    rerun = run_module("pkcs11_key", args, diff=True)
    assert not rerun.changed and rerun["public_key"] == applied["public_key"]


def test_key_of_other_type_needs_force(softhsm_token):
    first = run_module("pkcs11_key", _key_args(softhsm_token))
    other = _key_args(softhsm_token, key_type="rsa", size=2048)
    refused = run_module("pkcs11_key", other)
    assert refused.failed and "already exists as EC secp256r1" in refused["msg"] and "force=true" in refused["msg"]
    assert run_module("pkcs11_key", _key_args(softhsm_token))["public_key"] == first["public_key"]

    checked = run_module("pkcs11_key", dict(other, force=True), check_mode=True)
    assert checked.changed and "EC" in private_key_objects(softhsm_token)["ra-client"]
    forced = run_module("pkcs11_key", dict(other, force=True))
    assert forced.changed and forced["key_type"] == "rsa"
    assert "RSA" in private_key_objects(softhsm_token)["ra-client"]
    assert not run_module("pkcs11_key", dict(other, force=True)).changed


def test_key_absent_check_apply_rerun(softhsm_token):
    run_module("pkcs11_key", _key_args(softhsm_token))
    absent = _key_args(softhsm_token, state="absent")
    checked = run_module("pkcs11_key", absent, check_mode=True, diff=True)
    assert checked.changed and checked["diff"]["before"]["label"] == "ra-client"
    assert _labels(softhsm_token) == ["ra-client"]
    assert run_module("pkcs11_key", absent).changed
    assert _labels(softhsm_token) == []
    assert not run_module("pkcs11_key", absent).changed


def test_key_without_id_gets_public_key_hash(softhsm_token):
    result = run_module("pkcs11_key", softhsm_token.module_args(label="auto"))
    assert result.changed and len(result["id"]) == 40
    assert f"id=%{result['id'][:2].upper()}" in result["uri"]
    assert not run_module("pkcs11_key", softhsm_token.module_args(label="auto")).changed


@pytest.mark.parametrize("change,message", [
    (dict(pin="9999"), "PIN for token 'ra-test' was rejected"),
    (dict(token_label="no-such-token"), "no token labelled 'no-such-token'"),
    (dict(module_path=None), "module_path is required"),
    (dict(module_path="/usr/lib/nonexistent-pkcs11.so"), "does not exist"),
    (dict(id="0x1"), "is not hex"),
    (dict(id="abc"), "is not hex"),
    (dict(id=1), "id must be a hex string"),
    (dict(id=["01"]), "id must be a hex string"),
    (dict(label=["r", "a"]), "label must be a string"),
    (dict(label=[114, 97]), "label must be a string"),
    (dict(label=""), "label must not be empty"),
    (dict(key_type="rsa", size=1024), "RSA-1024 is too weak"),
    (dict(curve="secp256k1"), "curve"),
    (dict(token_env={"SOFTHSM2_CONF": "/nonexistent/softhsm2.conf"}), "cannot initialise the PKCS#11 library"),
])
def test_key_bad_input_fails_clearly_and_changes_nothing(softhsm_token, change, message):
    args = _key_args(softhsm_token)
    args.update(change)
    if args.get("module_path") is None:
        del args["module_path"]
    result = run_module("pkcs11_key", args)
    assert result.failed and not result.changed
    assert result["rc"] == 1  # a clean failure, not a crash (python-pkcs11 segfaults on wrong types: rc -11)
    assert message in result["msg"]
    assert softhsm_token.pin not in result["raw_stdout"].replace('"pin": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"', "")
    assert _labels(softhsm_token) == []


def test_key_pin_file(softhsm_token, tmp_path):
    pin_file = tmp_path / "token.pin"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o640)
    args = _key_args(softhsm_token, pin=None, pin_file=str(pin_file))
    del args["pin"]
    refused = run_module("pkcs11_key", args)
    assert refused.failed and "mode 0640" in refused["msg"] and "chmod 0600" in refused["msg"]
    assert _labels(softhsm_token) == []
    pin_file.chmod(0o600)
    assert run_module("pkcs11_key", args).changed
    both = run_module("pkcs11_key", dict(args, pin=softhsm_token.pin))
    assert both.failed and "mutually exclusive" in both["msg"]


# ---------------------------------------------------------------- pkcs11_csr


def _csr_args(token, path, **extra):
    args = token.module_args(label="ra-client", subject=dict(SUBJECT), subject_alt_name=["DNS:host1.example"],
                             path=str(path))
    args.update(extra)
    return args


@pytest.mark.parametrize("key,algorithm", [
    (dict(), "ecdsa-with-SHA256"), (dict(curve="secp384r1"), "ecdsa-with-SHA384"),
    (dict(key_type="rsa", size=2048), "sha256WithRSAEncryption"),
])
def test_csr_check_apply_rerun(softhsm_token, tmp_path, key, algorithm):
    key_result = run_module("pkcs11_key", _key_args(softhsm_token, **key))
    path = tmp_path / "client.csr"
    args = _csr_args(softhsm_token, path)

    checked = run_module("pkcs11_csr", args, check_mode=True, diff=True)
    assert checked.changed and not path.exists(), checked.get("msg")
    assert checked["diff"]["before"] == {} and checked["diff"]["after"]["subject"].startswith("CN=host1")

    applied = run_module("pkcs11_csr", args, diff=True)
    assert applied.changed and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    verify = openssl_req_verify(path)
    assert verify.returncode == 0 and "verify OK" in verify.stdout + verify.stderr
    text = openssl_req_text(path)
    # Subject order as given: RFC 2253 prints it reversed.
    assert "Subject: CN=host1,OU=fleet,O=Example,L=Berlin,ST=Berlin,C=DE" in text
    assert "DNS:host1.example" in text and "TLS Web Client Authentication" in text
    assert f"Signature Algorithm: {algorithm}" in text
    csr = x509.load_pem_x509_csr(path.read_bytes())
    assert csr.public_key() == serialization.load_pem_public_key(key_result["public_key"].encode())
    assert applied["csr"] == path.read_text()

    before = path.read_bytes()
    rerun = run_module("pkcs11_csr", args, diff=True)
    assert not rerun.changed and rerun["reasons"] == [] and path.read_bytes() == before

    changed_subject = dict(args, subject=dict(SUBJECT, CN="host2"))
    assert run_module("pkcs11_csr", changed_subject, check_mode=True).changed and path.read_bytes() == before
    redone = run_module("pkcs11_csr", changed_subject)
    assert redone.changed and "subject differs" in redone["reasons"]
    assert "CN=host2" in openssl_req_text(path)


def test_csr_subject_as_ordered_list_and_file_mode(softhsm_token, tmp_path):
    run_module("pkcs11_key", _key_args(softhsm_token))
    path = tmp_path / "ordered.csr"
    args = _csr_args(softhsm_token, path, subject=[{"O": "Example"}, {"OU": "a"}, {"OU": "b"}, {"CN": "h"}],
                     mode="0600")
    assert run_module("pkcs11_csr", args).changed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "Subject: CN=h,OU=b,OU=a,O=Example" in openssl_req_text(path)
    assert not run_module("pkcs11_csr", args).changed
    relaxed = run_module("pkcs11_csr", dict(args, mode="0644"))
    assert relaxed.changed and relaxed["reasons"] == [] and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_csr_replaces_csr_of_another_key(softhsm_token, tmp_path):
    run_module("pkcs11_key", _key_args(softhsm_token))
    run_module("pkcs11_key", softhsm_token.module_args(label="other", id="02"))
    path = tmp_path / "c.csr"
    run_module("pkcs11_csr", _csr_args(softhsm_token, path, label="other"))
    result = run_module("pkcs11_csr", _csr_args(softhsm_token, path))
    assert result.changed and "public key differs from the token key" in result["reasons"]


@pytest.mark.parametrize("change,message", [
    (dict(digest="sha1"), "digest 'sha1' is refused"),
    (dict(digest="md5"), "digest 'md5' is refused"),
    (dict(subject={"XX": "y"}), "Unknown subject attribute 'XX'"),
    (dict(subject="CN=host1"), "subject must be a mapping"),
    (dict(subject_alt_name=["host1"]), "must look like DNS:name"),
    (dict(label="missing"), "no private key labelled 'missing'"),
    (dict(pin="0000"), "was rejected"),
    (dict(id=7), "id must be a hex string"),
])
def test_csr_bad_input_fails_clearly_and_writes_nothing(softhsm_token, tmp_path, change, message):
    run_module("pkcs11_key", _key_args(softhsm_token))
    path = tmp_path / "bad.csr"
    result = run_module("pkcs11_csr", _csr_args(softhsm_token, path, **change))
    assert result.failed and not result.changed and result["rc"] == 1
    assert message in result["msg"]
    assert not path.exists()


def test_key_with_other_id_is_refused_and_absent_matches_id(softhsm_token):
    assert run_module("pkcs11_key", _key_args(softhsm_token)).changed
    other_id = run_module("pkcs11_key", _key_args(softhsm_token, id="02"))
    assert other_id.failed and "already exists with id 01, not 02" in other_id["msg"]
    assert not run_module("pkcs11_key", _key_args(softhsm_token, id="02", state="absent")).changed
    assert _labels(softhsm_token) == ["ra-client"]


def test_unprotected_existing_key_is_refused_unless_force(softhsm_token):
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    # An extractable, non-sensitive key made behind the module's back (python-pkcs11 directly).
    lib = _pkcs11.load_library(softhsm_token.module_path, softhsm_token.env)
    with lib.get_token(token_label=softhsm_token.token_label).open(rw=True, user_pin=softhsm_token.pin) as session:
        params = session.create_domain_parameters(
            pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(id=b"\x01", label="ra-client", store=True,
                                private_template={pkcs11.Attribute.SENSITIVE: False,
                                                  pkcs11.Attribute.EXTRACTABLE: True})
    refused = run_module("pkcs11_key", _key_args(softhsm_token))
    assert refused.failed and "is not protected (" in refused["msg"] and "EXTRACTABLE=True" in refused["msg"]
    replaced = run_module("pkcs11_key", _key_args(softhsm_token, force=True))
    assert replaced.changed and replaced["attributes"]["extractable"] is False, replaced.get("msg")
    assert "never extractable" in private_key_objects(softhsm_token)["ra-client"]


def test_csr_replaces_a_file_that_is_not_a_csr(softhsm_token, tmp_path):
    run_module("pkcs11_key", _key_args(softhsm_token))
    path = tmp_path / "garbage.csr"
    path.write_text("not a CSR\n")
    path.chmod(0o640)
    result = run_module("pkcs11_csr", _csr_args(softhsm_token, path), diff=True)
    assert result.changed and result["reasons"] == [f"{path} is not a PEM CSR"]
    assert openssl_req_verify(path).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # an existing file keeps its mode


def test_csr_rsa_pss_is_opt_in(softhsm_token, tmp_path):
    run_module("pkcs11_key", _key_args(softhsm_token, key_type="rsa", size=2048))
    path = tmp_path / "pss.csr"
    args = _csr_args(softhsm_token, path, rsa_padding="pss")
    assert run_module("pkcs11_csr", args).changed
    assert openssl_req_verify(path).returncode == 0
    assert "Signature Algorithm: rsassaPss" in openssl_req_text(path)
    assert not run_module("pkcs11_csr", args).changed
    back = run_module("pkcs11_csr", dict(args, rsa_padding="pkcs1v15"))
    assert back.changed and back["reasons"] == ["RSA padding differs"]
    assert "Signature Algorithm: sha256WithRSAEncryption" in openssl_req_text(path)


def test_csr_with_key_makes_key_and_csr_in_one_run(softhsm_token, tmp_path):
    """pkcs11_csr with key: check mode makes nothing, then one run makes the key (as pkcs11_key would) and the CSR,
    and a rerun changes nothing."""
    path = tmp_path / "host1.csr"
    args = _csr_args(softhsm_token, path, key=dict(key_type="ec", curve="secp384r1"))

    checked = run_module("pkcs11_csr", args, check_mode=True)
    assert checked.changed and checked["csr"] == "" and checked["key"]["curve"] == "secp384r1", checked
    assert _labels(softhsm_token) == [] and not path.exists()

    applied = run_module("pkcs11_csr", args)
    assert applied.changed and applied["key"]["changed"], applied
    assert _labels(softhsm_token) == ["ra-client"]
    assert applied["key"]["attributes"]["extractable"] is False and applied["key"]["attributes"]["sensitive"]
    csr = x509.load_pem_x509_csr(path.read_bytes())
    assert csr.is_signature_valid and csr.public_key().curve.name == "secp384r1"
    assert csr.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) \
        .decode() == applied["key"]["public_key"]
    assert openssl_req_verify(path).returncode == 0

    rerun = run_module("pkcs11_csr", args)
    assert not rerun.changed and not rerun["key"]["changed"] and rerun["csr"] == applied["csr"], rerun

    # A key of another type is not replaced behind the operator's back.
    other = run_module("pkcs11_csr", dict(args, key=dict(key_type="rsa", size=2048)))
    assert other.failed and "already exists as EC secp384r1, but RSA-2048 was requested" in other["msg"], other
    assert _labels(softhsm_token) == ["ra-client"] and path.read_text() == applied["csr"]
