"""The pure CA code in-process: names, key options, serials, the database, CRL entries and token-backed signing."""
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.integration.x509.builders import ec_key, make_csr, name

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca


def test_build_name_keeps_order_and_multi_values():
    built = _ca.build_name({"C": "DE", "O": "Example", "OU": ["a", "b"], "CN": "host1"})
    assert built.rfc4514_string() == "CN=host1,OU=b,OU=a,O=Example,C=DE"
    assert [a.value for a in built.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["a", "b"]
    for bad, expected in (({}, "non-empty mapping"), ({"X": "y"}, "Unknown subject attribute"),
                          ({"CN": ""}, "non-empty string"), ({"C": "DEU"}, "invalid")):
        with pytest.raises(_ca.CAError, match=expected):
            _ca.build_name(bad)


def test_key_options():
    assert _ca.key_source_from_options({"path": "/k", "passphrase": None, "token_env": {}}) == _ca.FileKeySource("/k")
    with pytest.raises(_ca.CAError, match="not both"):
        _ca.key_source_from_options({"path": "/k", "label": "x"})
    with pytest.raises(_ca.CAError, match="missing: token_label, label"):
        _ca.key_source_from_options({"module_path": "/usr/lib/softhsm/libsofthsm2.so", "pin": "1"})


def test_parse_serial():
    assert _ca.parse_serial("0x0A:ff") == 0x0AFF == _ca.parse_serial("aff")
    for bad in ("", "0x", "12g4"):
        with pytest.raises(_ca.CAError, match="not hex"):
            _ca.parse_serial(bad)


def test_serials_are_159_bit_and_distinct():
    serials = {_ca.random_serial() for _ in range(200)}
    assert len(serials) == 200 and all(s.bit_length() == 159 for s in serials)


def test_database_roundtrip_and_refusals(tmp_path, file_ca):
    cert = _ca.issue_certificate(file_ca.cert, file_ca.key, make_csr(ec_key(), name(CN="db")), 30)
    database = _ca.CADatabase.load(tmp_path / "db.json")
    database.record_issued(cert)
    assert database.revoke(cert.serial_number, "superseded") is True
    assert database.revoke(cert.serial_number, "superseded") is False  # already revoked
    with pytest.raises(_ca.CAError, match="unknown"):
        database.revoke(cert.serial_number, "bored")
    with pytest.raises(_ca.CAError, match="not in the CA database"):
        database.revoke(12345)
    database.save()
    reloaded = _ca.CADatabase.load(tmp_path / "db.json")
    assert reloaded.status(cert.serial_number) == "revoked"
    (tmp_path / "db.json").write_text(json.dumps({"version": 7}))
    with pytest.raises(_ca.CAError, match="not a version 1 CA database"):
        _ca.CADatabase.load(tmp_path / "db.json")


def test_crl_reason_codes(file_ca):
    entries = [
        dict(serial="1f", revocation_date="2026-01-01T00:00:00+00:00", revocation_reason="unspecified"),
        dict(serial="2e", revocation_date="2026-01-02T00:00:00+00:00", revocation_reason="key_compromise"),
    ]
    crl = _ca.build_crl(file_ca.cert, file_ca.key, entries, 7, 1)
    unspecified = crl.get_revoked_certificate_by_serial_number(0x1F)
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280: omit rather than say "unspecified"
        unspecified.extensions.get_extension_for_class(x509.CRLReason)
    assert _ca.crl_revoked_set(crl) == {(0x1F, "unspecified"), (0x2E, "key_compromise")}
    assert _ca.crl_differences(crl, file_ca.cert, entries, 2) == []
    assert _ca.crl_differences(crl, file_ca.cert, entries[:1], 2) == ["the set of revoked certificates changed"]


def test_issue_caps_validity_at_the_ca(make_file_ca, tmp_path):
    short_ca = make_file_ca(tmp_path / "short", validity_days=10)
    cert = _ca.issue_certificate(short_ca.cert, short_ca.key, make_csr(ec_key(), name(CN="capped")), 365)
    assert cert.not_valid_after_utc == short_ca.cert.not_valid_after_utc
