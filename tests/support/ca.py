"""A real file-key CA for tests, built with the collection's own CA code (plugins/module_utils/_ca.py).

Use from a test directory's conftest.py::

    from tests.support.ca import file_ca  # noqa: F401

``file_ca`` is a :class:`FileCA` (EC P-384, encrypted key) in tmp_path. Issue client certificates with
``issue_client_cert(ca, public_key_or_csr, subject=..., validity_days=...)``; the certificate is recorded in the
CA database, so x509_crl can revoke it.
"""
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ansible import COLLECTIONS, ensure_collection_link

ensure_collection_link()
import sys  # noqa: E402

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca  # noqa: E402

DEFAULT_SUBJECT = {"O": "rolesanywhere.fleet tests", "CN": "Test Roles Anywhere CA"}


@dataclass
class FileCA:
    directory: Path
    cert_path: Path
    key_path: Path
    passphrase: str
    cert: x509.Certificate
    key: object

    @property
    def database_path(self):
        return Path(_ca.default_database_path(self.cert_path))

    def key_option(self):
        """The ``key`` / ``ca_key`` option of the x509_* modules for this CA."""
        return {"path": str(self.key_path), "passphrase": self.passphrase}

    def database(self):
        return _ca.CADatabase.load(self.database_path)

    def pem(self):
        return _ca.pem(self.cert).decode()


def make_file_ca(directory, key_type="ec", curve="secp384r1", size=3072, passphrase="ca-passphrase",
                 subject=None, validity_days=3650, path_length=0):
    """Create a CA (key file 0600, encrypted; certificate 0644) in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = _ca.generate_key(key_type, curve, size)
    cert = _ca.build_ca_certificate(key, _ca.build_name(subject or DEFAULT_SUBJECT), validity_days, path_length)
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    _ca.write_file_atomic(key_path, _ca.private_key_pem(key, passphrase), _ca.KEY_MODE)
    _ca.write_file_atomic(cert_path, _ca.pem(cert), _ca.CERT_MODE)
    return FileCA(directory, cert_path, key_path, passphrase, cert, key)


@pytest.fixture
def file_ca(tmp_path):
    """An EC P-384 CA with an encrypted key file under tmp_path/ca."""
    return make_file_ca(tmp_path / "ca")


def _as_public_key(value):
    if isinstance(value, (str, bytes)):
        data = value.encode() if isinstance(value, str) else value
        if b"CERTIFICATE REQUEST" in data:
            return x509.load_pem_x509_csr(data)
        return serialization.load_pem_public_key(data)
    return value


def issue_client_cert(ca, public_key_or_csr, subject=None, validity_days=30, sans=None, path=None, record=True):
    """Issue a Roles Anywhere client certificate from ``ca``.

    ``public_key_or_csr``: a CSR (object or PEM) — its subject and SANs are used unless given — or a public
    key (object or PEM, e.g. pkcs11_key's ``public_key``), which needs ``subject`` (mapping or x509.Name).
    ``sans``: list of DNS names. Writes PEM to ``path`` if given; records the certificate in the CA database.
    """
    material = _as_public_key(public_key_or_csr)
    name = _ca.build_name(subject) if isinstance(subject, dict) else subject
    san_ext = x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]) if sans else None
    if isinstance(material, x509.CertificateSigningRequest):
        if name is None and san_ext is None:
            cert = _ca.issue_certificate(ca.cert, ca.key, material, validity_days)
        else:
            _ca.check_csr_or_fail(material)
            cert = _ca.issue_for_public_key(ca.cert, ca.key, material.public_key(), name or material.subject,
                                            validity_days, san_ext or _ca.subject_alt_names(material))
    else:
        if name is None:
            raise ValueError("a bare public key needs a subject")
        cert = _ca.issue_for_public_key(ca.cert, ca.key, material, name, validity_days, san_ext)
    if record:
        database = ca.database()
        database.record_issued(cert)
        database.save()
    if path is not None:
        _ca.write_file_atomic(path, _ca.pem(cert), _ca.CERT_MODE)
    return cert


def openssl_verify_client(ca_cert_path, cert_path):
    """``openssl verify -x509_strict -purpose sslclient``; returns the CompletedProcess (check rc and stdout)."""
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(ca_cert_path), str(cert_path)],
        capture_output=True, text=True, timeout=30,
    )
