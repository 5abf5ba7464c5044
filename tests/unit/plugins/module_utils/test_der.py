"""_der: the certificate fields and file keys the helper reads without cryptography agree with cryptography's."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import NameOID

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _der, _sigv4x509


def certificate(key, not_after):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host1")])
    ca_key = ec.generate_private_key(ec.SECP384R1())
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)).not_valid_after(not_after)
            .sign(ca_key, hashes.SHA384()))


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
                                 rsa.generate_private_key(public_exponent=65537, key_size=2048)], ids=["p256", "p384", "rsa"])
@pytest.mark.parametrize("not_after", [datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc),
                                       datetime.datetime(2050, 1, 1, tzinfo=datetime.timezone.utc)],
                         ids=["utctime", "generalizedtime"])
def test_certificate_fields_and_key_material_match_cryptography(key, not_after):
    cert = certificate(key, not_after)
    parsed = _der.Certificate(cert.public_bytes(serialization.Encoding.DER))
    assert parsed.serial_number == cert.serial_number
    assert (parsed.not_valid_before_utc, parsed.not_valid_after_utc) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
    assert parsed.public_key_material == _sigv4x509.key_material(key)
    assert _sigv4x509.algorithm_for_certificate(parsed) == _sigv4x509.algorithm_for(key)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert _der.pem_blocks(b"junk\n" + pem + pem) == [("CERTIFICATE", parsed.der)] * 2


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()),
                                 rsa.generate_private_key(public_exponent=65537, key_size=2048)], ids=["ec", "rsa"])
@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_unencrypted_file_keys_load_from_their_numbers(tmp_path, key, fmt):
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    loaded = _sigv4x509.load_private_key_file(str(path))
    assert loaded.private_numbers() == key.private_numbers()


def test_encrypted_keys_go_to_cryptography(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    assert _der.private_key_numbers(*_der.pem_blocks(path.read_bytes())[0]) is None
    assert _sigv4x509.load_private_key_file(str(path), "secret").private_numbers() == key.private_numbers()
    with pytest.raises(_sigv4x509.ConfigurationError, match="encrypted"):
        _sigv4x509.load_private_key_file(str(path))


@pytest.mark.parametrize("r, s", [(1, 2), (2 ** 255 + 7, 2 ** 254), (2 ** 200, 2 ** 256 - 1)])
def test_ecdsa_signature_encoding_matches_cryptography(r, s):
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert _der.encode_ecdsa_signature(raw) == utils.encode_dss_signature(r, s)


def test_not_a_certificate_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(_sigv4x509.ConfigurationError, match="holds no X.509 certificate"):
        _sigv4x509.load_certificate_file(str(path))
