"""_pkcs11 in-process: keys, protection read back by pkcs11-tool, token signing verified by openssl."""
import os
import subprocess

import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11
from tests.integration.pkcs11.helpers import openssl_req_verify, pkcs11_tool, private_key_objects
from tests.support.tokens import make_softhsm_token

KEYS = [("ec", "secp256r1", None), ("ec", "secp384r1", None), ("rsa", None, 2048)]


def _csr(key, digest=None, rsa_padding=None):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host1")]))
    digest = digest or getattr(hashes, _pkcs11.default_digest(key.public_key()).upper())()
    kwargs = {"rsa_padding": rsa_padding} if rsa_padding else {}
    return builder.sign(key, digest, **kwargs)


@pytest.mark.parametrize("key_type,curve,size", KEYS)
def test_generated_key_signs_on_token_and_cannot_be_read(softhsm_token, tmp_path, key_type, curve, size):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "k", key_type, curve, size, key_id=b"\x01")
        assert _pkcs11.key_protection(keypair.private) == dict(
            sensitive=True, extractable=False, always_sensitive=True, never_extractable=True, local=True,
            token=True, private=True)
        key = _pkcs11.token_private_key(session, "k", b"\x01")
        assert isinstance(key, ec.EllipticCurvePrivateKey if key_type == "ec" else _pkcs11.rsa.RSAPrivateKey)
        csr = _csr(key)
        assert csr.is_signature_valid
        assert csr.public_key() == key.public_key()
        with pytest.raises(_pkcs11.TokenError):
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        # Ask the token directly (python-pkcs11, not our code) for the secret value and to unprotect it.
        secret = pkcs11.Attribute.VALUE if key_type == "ec" else pkcs11.Attribute.PRIVATE_EXPONENT
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            keypair.private[secret]
        with pytest.raises(pkcs11.exceptions.AttributeReadOnly):
            keypair.private[pkcs11.Attribute.EXTRACTABLE] = True
    path = tmp_path / "req.pem"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    verify = openssl_req_verify(path)
    assert verify.returncode == 0 and "verify OK" in (verify.stdout + verify.stderr)

    listing = private_key_objects(softhsm_token)["k"]
    access = next(line for line in listing.splitlines() if "Access:" in line)
    assert "sensitive" in access and "always sensitive" in access and "never extractable" in access
    assert "extractable" not in access.replace("never extractable", "")


def test_ecdsa_signature_verifies_with_independent_public_key(softhsm_token):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        _pkcs11.generate_keypair(session, "k", "ec", "secp384r1")
        key = _pkcs11.token_private_key(session, "k")
        signature = key.sign(b"payload", ec.ECDSA(hashes.SHA384()))
    # The public point as pkcs11-tool reads it from the token; verification runs in cryptography, not our code.
    listing = pkcs11_tool(softhsm_token, "--list-objects", "--type", "pubkey", login=False)
    assert listing.returncode == 0, listing.stderr
    wrapped = bytes.fromhex(next(line.split(":", 1)[1].strip() for line in listing.stdout.splitlines()
                                 if line.strip().startswith("EC_POINT:")))
    assert wrapped[:2] == b"\x04\x61"  # DER OCTET STRING around the 97-byte uncompressed P-384 point
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), wrapped[2:])
    public.verify(signature, b"payload", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"other payload", ec.ECDSA(hashes.SHA384()))


def test_rsa_pss_is_opt_in_and_verifies(softhsm_token):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        _pkcs11.generate_keypair(session, "r", "rsa", size=2048)
        key = _pkcs11.token_private_key(session, "r")
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        assert _csr(key, rsa_padding=pss).is_signature_valid
        v15 = _csr(key)
        assert v15.is_signature_valid and v15.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
        with pytest.raises(_pkcs11.TokenError, match="SHA-1"):
            key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())


def test_key_id_defaults_to_public_key_hash_and_find_by_label(softhsm_token):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "auto", "ec")
        public = _pkcs11.public_key_of(keypair)
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        import hashlib
        assert keypair.key_id == hashlib.sha1(point).digest()
        found = _pkcs11.find_keypair(session, "auto")
        assert found.key_id == keypair.key_id and found.key_type == "ec"
        assert _pkcs11.find_keypair(session, "auto", b"\x99") is None
        assert _pkcs11.find_keypair(session, "missing") is None
        with pytest.raises(_pkcs11.TokenError, match="no private key labelled 'missing'"):
            _pkcs11.token_private_key(session, "missing")


def test_certificate_object_next_to_key(softhsm_token):
    import datetime
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        _pkcs11.generate_keypair(session, "c", "ec", key_id=b"\x07")
        key = _pkcs11.token_private_key(session, "c")
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        cert.verify_directly_issued_by(cert)
        assert _pkcs11.store_certificate(session, cert, "c", b"\x07") is True
        assert _pkcs11.store_certificate(session, cert, "c", b"\x07") is False
        stored = _pkcs11.find_certificates(session, "c", b"\x07")
        assert stored == [cert.public_bytes(serialization.Encoding.DER)]
    listing = pkcs11_tool(softhsm_token, "--list-objects", "--type", "cert", login=False)
    assert "label:      c" in listing.stdout


def test_two_softhsm_configs_in_one_process(tmp_path):
    first = make_softhsm_token(tmp_path / "a", label="first")
    second = make_softhsm_token(tmp_path / "b", label="second")
    for token in (first, second, first):
        with _pkcs11.open_token_session(token.spec(), rw=True) as session:
            assert session.token.label == token.token_label


def test_uri_encoding():
    uri = _pkcs11.pkcs11_uri("ra token", "key/1", b"\x01\xab", pin_value="12 34&x")
    assert uri == "pkcs11:token=ra%20token;id=%01%AB;object=key%2F1;type=private?pin-value=12%2034%26x"
    assert _pkcs11.pkcs11_uri("t", "k", object_type="cert") == "pkcs11:token=t;object=k;type=cert"
    assert _pkcs11.pkcs11_uri("t", "k", pin_source="/etc/ra/pin") == \
        "pkcs11:token=t;object=k;type=private?pin-source=file:/etc/ra/pin"
    with pytest.raises(_pkcs11.TokenError):
        _pkcs11.pkcs11_uri("t", "k", pin_value="1", pin_source="/x")


@pytest.mark.parametrize("value,expected", [("01", b"\x01"), ("A1:b2", b"\xa1\xb2"), (None, None)])
def test_parse_key_id(value, expected):
    assert _pkcs11.parse_key_id(value) == expected


@pytest.mark.parametrize("value", ["1", "zz", "", 1, ["01"], 1.5])
def test_parse_key_id_rejects(value):
    with pytest.raises(_pkcs11.TokenError, match="id"):
        _pkcs11.parse_key_id(value)


@pytest.mark.parametrize("overrides,message", [
    (dict(pin=1234), "pin must be a string"),
    (dict(token_label=b"ra-test"), "token_label must be a string"),
    (dict(token_label=["r", "a"]), "token_label must be a string"),
    (dict(module_path=None), "module_path is required"),
    (dict(module_path="/nonexistent/lib.so"), "does not exist"),
    (dict(token_label="unknown"), "no token labelled 'unknown'"),
    (dict(env={"SOFTHSM2_CONF": 5}), "env entries must be strings"),
])
def test_bad_specs_fail_clearly(softhsm_token, overrides, message):
    with pytest.raises(_pkcs11.TokenError, match=message):
        with _pkcs11.open_token_session(softhsm_token.spec(**overrides)):
            pass


def test_wrong_types_reach_no_library_call(softhsm_token):
    """Types that crash python-pkcs11 (str id, bytes label) are refused before it is called."""
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        for label, key_id in [(b"k", None), ("k", "01"), (["k"], None), ("k", 1)]:
            with pytest.raises(_pkcs11.TokenError):
                _pkcs11.find_keypair(session, label, key_id)
            with pytest.raises(_pkcs11.TokenError):
                _pkcs11.generate_keypair(session, label, "ec", key_id=key_id)
        assert list(session.get_objects()) == []


def test_pin_file_modes(softhsm_token, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o644)
    with pytest.raises(_pkcs11.TokenError, match="chmod 0600"):
        with _pkcs11.open_token_session(softhsm_token.spec(pin=None, pin_file=str(pin_file))):
            pass
    pin_file.chmod(0o600)
    with _pkcs11.open_token_session(softhsm_token.spec(pin=None, pin_file=str(pin_file))) as session:
        assert session.token.label == softhsm_token.token_label


def test_wrong_pin_is_tried_once(softhsm_token):
    with pytest.raises(_pkcs11.TokenError, match="rejected.*not retried"):
        with _pkcs11.open_token_session(softhsm_token.spec(pin="9999")):
            pass


def test_rsa_1024_and_unknown_curve_refused(softhsm_token):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        with pytest.raises(_pkcs11.TokenError, match="RSA-1024 is too weak"):
            _pkcs11.generate_keypair(session, "weak", "rsa", size=1024)
        with pytest.raises(_pkcs11.TokenError, match="curve must be one of"):
            _pkcs11.generate_keypair(session, "c", "ec", curve="secp256k1")
        assert list(session.get_objects()) == []


def test_init_token_on_fresh_softhsm(tmp_path):
    token = make_softhsm_token(tmp_path / "existing", label="existing")
    code = (
        "import json,sys\n"
        "from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11\n"
        "print(json.dumps(_pkcs11.init_token(sys.argv[1], 'fresh', '11112222', '3333', json.loads(sys.argv[2]))))\n"
    )
    from tests.support.ansible import ansible_env
    proc = subprocess.run([_python(), "-c", code, token.module_path, __import__("json").dumps(token.env)],
                          capture_output=True, text=True, env=ansible_env(token.env), timeout=60)
    assert proc.returncode == 0, proc.stderr
    info = __import__("json").loads(proc.stdout)
    assert info["label"] == "fresh" and info["user_pin_initialized"] and info["model"] == "SoftHSM v2"
    fresh = make_softhsm_token.__globals__["Token"](token.module_path, "fresh", "3333", "11112222", token.env)
    with _pkcs11.open_token_session(fresh.spec()) as session:
        assert session.token.label == "fresh"


def _python():
    import sys
    return sys.executable


def test_public_half_found_by_id_when_labels_differ(softhsm_token):
    with _pkcs11.open_token_session(softhsm_token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "paired", "ec", key_id=b"\x42")
        keypair.public[pkcs11.Attribute.LABEL] = "another tool's label"
        key = _pkcs11.token_private_key(session, "paired")
        assert key.public_key() == _pkcs11.public_key_of(keypair)
        assert _csr(key).is_signature_valid


def test_library_initialised_elsewhere_is_reinitialised_for_the_spec(tmp_path):
    first = make_softhsm_token(tmp_path / "a", label="same")
    second = make_softhsm_token(tmp_path / "b", label="same")
    os.environ.update(first.env)
    pkcs11.lib(first.module_path).reinitialize()  # someone else's code, settings unknown to _pkcs11
    with _pkcs11.open_token_session(second.spec(), rw=True) as session:
        _pkcs11.generate_keypair(session, "only-in-b", "ec")
    assert list(private_key_objects(second)) == ["only-in-b"]
    assert private_key_objects(first) == {}
