# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own CA: CA key from a file or a PKCS#11 token, self-signed CA certificate,
client certificates issued from CSRs, the CA database and CRLs.

Pure Python (cryptography; python-pkcs11 only for token keys, through _pkcs11). Every function that
refuses something raises CAError with a message that names the problem and the fix.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import secrets
import string
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1}
except ImportError:  # the modules report it: _cryptography.require_cryptography
    pass

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _x509_rules as rules

CERT_MODE = 0o644
KEY_MODE = 0o600
DATABASE_MODE = 0o600
CLOCK_SKEW = datetime.timedelta(minutes=5)
SERIAL_BITS = 159
DATABASE_VERSION = 1
# x509.ReasonFlags' names without remove_from_crl (plain data: the argument spec of x509_crl lists them).
REVOCATION_REASONS = ("unspecified", "key_compromise", "ca_compromise", "affiliation_changed", "superseded",
                      "cessation_of_operation", "certificate_hold", "privilege_withdrawn", "aa_compromise")

# The `key` option of x509_ca, x509_issue and x509_crl (an Ansible suboptions spec, plain data).
CA_KEY_OPTIONS = dict(
    path=dict(type="path"),
    passphrase=dict(type="str", no_log=True),
    module_path=dict(type="path"),
    token_label=dict(type="str", no_log=False),
    pin=dict(type="str", no_log=True),
    pin_file=dict(type="path"),
    label=dict(type="str"),
    id=dict(type="str"),
    token_env=dict(type="dict", default={}, no_log=False),
)


class CAError(Exception):
    """A refusal or failure whose message is safe to show (never contains a PIN or passphrase)."""


# The *_utc validity accessors arrived in cryptography 42 (Debian 12 ships 38).
MIN_CRYPTOGRAPHY = (42, 0)


def require_cryptography():
    """Refuse to run with a cryptography too old for the CA and the rules (clear error, not an AttributeError)."""
    import cryptography

    version = tuple(int(part) for part in cryptography.__version__.split(".")[:2])
    if version < MIN_CRYPTOGRAPHY:
        raise CAError(
            f"cryptography {cryptography.__version__} is too old for the CA modules: install cryptography >= "
            f"{'.'.join(map(str, MIN_CRYPTOGRAPHY))} on this host (pip install 'cryptography>=42')."
        )


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------- names

def build_name(subject):
    """x509.Name from a mapping such as {"O": "Example", "OU": "fleet", "CN": "host1"}; order preserved.

    A value may be a list for a multi-valued attribute (several OUs).
    """
    if not isinstance(subject, dict) or not subject:
        raise CAError("subject must be a non-empty mapping of attribute names (C, ST, L, O, OU, CN, ...) to values.")
    attributes = []
    for key, values in subject.items():
        oid = rules.SUBJECT_ATTRIBUTES.get(key)
        if oid is None:
            raise CAError(f"Unknown subject attribute {key!r}; use one of {', '.join(rules.SUBJECT_ATTRIBUTES)}.")
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or not value:
                raise CAError(f"Subject attribute {key} must be a non-empty string, not {value!r}.")
            try:
                attributes.append(x509.NameAttribute(oid, value))
            except ValueError as exc:
                raise CAError(f"Subject attribute {key}={value!r} is invalid: {exc}") from None
    return x509.Name([x509.RelativeDistinguishedName([attr]) for attr in attributes])


# ---------------------------------------------------------------- keys

@dataclass
class FileKeySource:
    path: str
    passphrase: str | None = None


@dataclass
class TokenKeySource:
    spec: object  # _pkcs11.TokenSpec
    label: str
    key_id: bytes | None = None


def key_source_from_options(options):
    """FileKeySource or TokenKeySource from the `key` option (see CA_KEY_OPTIONS)."""
    options = {k: v for k, v in (options or {}).items() if v not in (None, {}, "")}
    file_keys = {"path", "passphrase"} & options.keys()
    token_keys = {"module_path", "token_label", "pin", "pin_file", "label", "id", "token_env"} & options.keys()
    if file_keys and token_keys:
        raise CAError(
            f"The CA key is either a file (path, passphrase) or a token key (module_path, token_label, pin or "
            f"pin_file, label, id), not both: got {', '.join(sorted(file_keys | token_keys))}."
        )
    if "path" in options:
        return FileKeySource(options["path"], options.get("passphrase"))
    if file_keys:
        raise CAError("The CA key option has a passphrase but no path: set key.path to the PEM key file.")
    missing = [name for name in ("module_path", "token_label", "label") if name not in options]
    if missing:
        raise CAError(
            "The CA key needs either key.path (a PEM file) or a token key with key.module_path, key.token_label "
            f"and key.label; missing: {', '.join(missing)}."
        )
    # Imported here so that file-key users need no python-pkcs11.
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11

    spec = _pkcs11.TokenSpec(
        module_path=options["module_path"], token_label=options["token_label"], pin=options.get("pin"),
        pin_file=options.get("pin_file"),
        env={str(name): str(value) for name, value in (options.get("token_env") or {}).items()},
    )
    try:
        _pkcs11.validate_spec(spec)
        _pkcs11.check_key_label(options["label"])
        key_id = _pkcs11.parse_key_id(options.get("id"))
    except _pkcs11.TokenError as exc:
        raise CAError(f"CA key: {exc}") from None
    return TokenKeySource(spec, options["label"], key_id)


def load_key_file(path, passphrase=None):
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CAError(f"CA key file {path} does not exist: create it (x509_ca creates it) or fix key.path.") from None
    except OSError as exc:
        raise CAError(f"Cannot read CA key file {path}: {exc.strerror}.") from None
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode() if passphrase else None)
    except TypeError:
        if passphrase:
            raise CAError(f"CA key file {path} is not encrypted: remove key.passphrase.") from None
        raise CAError(f"CA key file {path} is encrypted: give its passphrase in key.passphrase.") from None
    except ValueError:
        raise CAError(
            f"Cannot load CA key file {path}: wrong passphrase, or not a PEM private key."
        ) from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CAError(f"CA key file {path} holds a {type(key).__name__}; use an RSA or EC P-256/P-384 key.")
    return key


def generate_key(key_type="ec", curve="secp384r1", size=3072):
    if key_type == "ec":
        if curve not in CURVES:
            raise CAError(f"curve must be one of {', '.join(CURVES)}, not {curve!r}.")
        return ec.generate_private_key(CURVES[curve]())
    if key_type == "rsa":
        if size not in (2048, 3072, 4096):
            raise CAError(f"size must be 2048, 3072 or 4096, not {size!r}.")
        return rsa.generate_private_key(65537, size)
    raise CAError(f"key_type must be ec or rsa, not {key_type!r}.")


def private_key_pem(key, passphrase=None):
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@contextmanager
def open_ca_key(source):
    """Yield the CA private key: loaded from its file, or a token-backed key (one login, closed after)."""
    if isinstance(source, FileKeySource):
        yield load_key_file(source.path, source.passphrase)
        return
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11

    try:
        with _pkcs11.open_token_session(source.spec, rw=False) as session:
            yield _pkcs11.token_private_key(session, source.label, source.key_id)
    except _pkcs11.TokenError as exc:
        raise CAError(str(exc)) from None


def same_public_key(a, b):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def signature_hash(public_key):
    """SHA-384 for P-384 keys, SHA-256 otherwise."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


# ---------------------------------------------------------------- files

def write_file_atomic(path, data, mode):
    """Write ``data`` (bytes) to ``path`` with ``mode``: a temp file in the same directory, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_mode_differs(path, mode):
    return os.stat(path).st_mode & 0o7777 != mode


def parse_certificate(data, origin):
    """A certificate from PEM or DER bytes; ``origin`` names the source in errors."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CAError(f"{origin} is not a PEM or DER certificate: fix the path or the content.") from None


def check_output_directory(path, check_mode):
    """The directory of an output file must exist; in check mode an earlier task of the run may create it."""
    if not check_mode and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise CAError(f"The directory of path {path} does not exist: create it first.")


def read_ca_certificate(ca_cert_path, ca_key_options, check_mode):
    """The CA certificate, or None in check mode when it does not exist yet (an earlier x509_ca task would
    create it; the key options are still validated)."""
    ca_cert = read_certificate(ca_cert_path)
    if ca_cert is None:
        if check_mode:
            key_source_from_options(ca_key_options)
            return None
        raise CAError(f"CA certificate {ca_cert_path} does not exist: create it with x509_ca first.")
    return ca_cert


def read_certificate(path):
    """The certificate at ``path``, or None when the file does not exist."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return parse_certificate(data, path)


def load_certificate(source):
    """A certificate from a path (str) or PEM/DER content (bytes); a missing file is an error."""
    if isinstance(source, bytes):
        return parse_certificate(source, "The certificate content")
    cert = read_certificate(source)
    if cert is None:
        raise CAError(f"Certificate file {source} does not exist: fix the path.")
    return cert


def load_csr(data, origin="csr"):
    if isinstance(data, str):
        data = data.encode()
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError:
        raise CAError(
            f"The CSR from {origin} cannot be parsed (damaged or not a CSR): create it again with pkcs11_csr."
        ) from None
    try:
        csr.extensions  # parsed lazily: a contradictory extension (CA:FALSE with pathlen) raises here
    except ValueError as exc:
        raise CAError(
            f"The CSR from {origin} carries a malformed extension ({exc}): create it again with pkcs11_csr, "
            "which requests no basicConstraints."
        ) from None
    return csr


def pem(cert_or_crl):
    return cert_or_crl.public_bytes(serialization.Encoding.PEM)


def serial_hex(serial):
    return format(serial, "x")


def certificate_summary(cert):
    """Plain facts about a certificate, for module results and diffs."""
    return dict(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=serial_hex(cert.serial_number),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        public_key_sha256=hashes_hex(cert.public_key()),
    )


def subject_key_identifier_hex(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return None


def hashes_hex(public_key):
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize().hex()


# ---------------------------------------------------------------- the CA certificate

def build_ca_certificate(key, subject, validity_days, path_length=None, now=None):
    """Self-signed CA certificate meeting the Roles Anywhere CA rules."""
    now = now or utcnow()
    public_key = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, signature_hash(public_key))
    )
    cert.verify_directly_issued_by(cert)
    return cert


def _key_usage(digital_signature=False, key_cert_sign=False, crl_sign=False):
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=crl_sign,
        encipher_only=False, decipher_only=False,
    )


def ca_certificate_differences(cert, public_key, subject, path_length, renew_before_days, now=None):
    """Why the CA certificate ``cert`` must be replaced (empty list: keep it)."""
    now = now or utcnow()
    reasons = []
    if not same_public_key(cert.public_key(), public_key):
        reasons.append("the certificate's public key is not the CA key's")
    if cert.subject != subject:
        reasons.append(f"subject {cert.subject.rfc4514_string()} differs from {subject.rfc4514_string()}")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.path_length != path_length:
            reasons.append(f"path length {constraints.path_length} differs from {path_length}")
    except x509.ExtensionNotFound:
        pass
    broken = [v.rule for v in rules.errors(rules.check_certificate(cert, "ca", now))]
    if broken:
        reasons.append("it breaks the Roles Anywhere CA rules: " + ", ".join(broken))
    if cert.not_valid_after_utc - now < datetime.timedelta(days=renew_before_days):
        reasons.append(f"it expires {cert.not_valid_after_utc.isoformat()}, within renew_before_days")
    return reasons


def check_ca_pair(ca_cert, ca_key_public, ca_cert_path="the CA certificate", now=None):
    """Refuse to sign with a CA certificate that does not match the key, is expired or is not a CA."""
    now = now or utcnow()
    if not same_public_key(ca_cert.public_key(), ca_key_public):
        raise CAError(
            f"{ca_cert_path} does not belong to the CA key (public keys differ): point ca_cert_path and the key "
            "option at the same CA."
        )
    broken = rules.errors(rules.check_certificate(ca_cert, "ca", now))
    if broken:
        raise CAError(f"{ca_cert_path} cannot sign: {rules.describe(broken)}")


# ---------------------------------------------------------------- issuing

def random_serial():
    """A positive, random serial of at most 159 bits (fits the 20-octet limit of RFC 5280)."""
    return secrets.randbits(SERIAL_BITS) | 1 << (SERIAL_BITS - 1)


def check_csr_or_fail(csr, require_subject=()):
    broken = rules.errors(rules.check_csr(csr, require_subject))
    if broken:
        raise CAError(f"The CSR is refused: {rules.describe(broken)}")


def _name_set(name):
    return sorted((attr.oid.dotted_string, attr.value) for attr in name)


def _san_set(sans):
    return sorted(repr(general_name) for general_name in (sans or []))


def check_requested_identity(csr, expected_subject=None, expected_sans=None):
    """A host is not trusted by its CA: the CSR may ask only for what the operator configured for that host.

    ``expected_subject`` (x509.Name) and ``expected_sans`` (a list of GeneralName; [] allows none) come from the
    inventory; None leaves that part to the CSR (modules used by hand). A CSR naming nobody is always refused.
    """
    sans = subject_alt_names(csr)
    if not csr.subject.rdns and not sans:
        raise CAError("The CSR is refused: it has an empty subject and no subjectAltName, so the certificate would "
                      "name nobody; create the CSR with the host's subject (pkcs11_csr subject).")
    if expected_subject is not None and _name_set(csr.subject) != _name_set(expected_subject):
        raise CAError(
            f"The CSR is refused: it asks for subject {csr.subject.rfc4514_string()!r}, but the subject configured "
            f"for this host is {expected_subject.rfc4514_string()!r}; the CA signs only the configured subject (a "
            "host could otherwise pick another OU or another host's CN): create the CSR again with that subject, or "
            "fix the host's configured subject.")
    if expected_sans is not None and _san_set(sans) != _san_set(expected_sans):
        asked = ", ".join(_san_set(sans)) or "none"
        configured = ", ".join(_san_set(expected_sans)) or "none"
        raise CAError(
            f"The CSR is refused: it asks for subjectAltName [{asked}], but the names configured for this host are "
            f"[{configured}]; create the CSR again with those names, or fix the host's configured names.")


def issue_certificate(ca_cert, ca_key, csr, validity_days, require_subject=(), now=None,
                      expected_subject=None, expected_sans=None):
    """A client certificate for ``csr``, signed by ``ca_key``. The CSR and the CA pair are checked first.

    Subject and subjectAltName come from the CSR and must equal ``expected_subject`` / ``expected_sans`` when
    given (see check_requested_identity); notAfter is capped at the CA certificate's notAfter.
    """
    check_csr_or_fail(csr, require_subject)
    check_requested_identity(csr, expected_subject, expected_sans)
    return issue_for_public_key(ca_cert, ca_key, csr.public_key(), csr.subject, validity_days, subject_alt_names(csr), now)


def check_validity_days(validity_days, renew_before_days=None):
    if not isinstance(validity_days, int) or validity_days <= 0:
        raise CAError(f"validity_days must be a positive number of days, not {validity_days!r}: fix validity_days.")
    if renew_before_days is not None and (not isinstance(renew_before_days, int) or renew_before_days < 0):
        raise CAError(f"renew_before_days must be zero or a positive number of days, not {renew_before_days!r}.")


def ca_expiry_warning(ca_cert, renew_before_days, now=None):
    """A warning when the CA certificate itself ends within the renewal window (host certificates end with it)."""
    now = now or utcnow()
    if ca_cert.not_valid_after_utc - now < datetime.timedelta(days=renew_before_days):
        return (f"The CA certificate expires {ca_cert.not_valid_after_utc.isoformat()}, within renew_before_days: "
                "host certificates cannot outlive it and are not re-issued on every run for that reason; renew the "
                "CA (x509_ca) and the trust anchor, then re-enrol.")
    return None


def issue_for_public_key(ca_cert, ca_key, public_key, subject, validity_days, sans=None, now=None):
    """A client certificate for a bare public key (e.g. read from a token); ``sans``: SubjectAlternativeName."""
    now = now or utcnow()
    check_validity_days(validity_days)
    broken = rules.errors(rules.check_public_key(public_key, "requested key"))
    if broken:
        raise CAError(f"The key is refused: {rules.describe(broken)}")
    check_ca_pair(ca_cert, ca_key.public_key(), now=now)
    not_after = min(now + datetime.timedelta(days=validity_days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if sans is not None:
        # An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6).
        builder = builder.add_extension(sans, critical=not subject.rdns)
    cert = builder.sign(ca_key, signature_hash(ca_key.public_key()))
    cert.verify_directly_issued_by(ca_cert)
    return cert


def issued_certificate_differences(cert, ca_cert, csr, renew_before_days, database=None, now=None):
    """Why the certificate at the destination must be issued again (empty list: keep it)."""
    now = now or utcnow()
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return ["it was not issued by this CA"]
    reasons = []
    if not same_public_key(cert.public_key(), csr.public_key()):
        reasons.append("its public key is not the CSR's")
    if cert.subject != csr.subject:
        reasons.append(f"subject {cert.subject.rfc4514_string()} differs from the CSR's {csr.subject.rfc4514_string()}")
    if subject_alt_names(cert) != subject_alt_names(csr):
        reasons.append("its subjectAltName differs from the CSR's")
    broken = [v.rule for v in rules.errors(rules.check_certificate(cert, "client", now))]
    if broken:
        reasons.append("it breaks the Roles Anywhere client rules: " + ", ".join(broken))
    # A certificate that already ends with the CA cannot be replaced by a longer one: ca_expiry_warning says so.
    ends_with_ca = cert.not_valid_after_utc >= ca_cert.not_valid_after_utc
    if cert.not_valid_after_utc - now < datetime.timedelta(days=renew_before_days) and not ends_with_ca:
        reasons.append(f"it expires {cert.not_valid_after_utc.isoformat()}, within renew_before_days")
    if database is not None and database.status(cert.serial_number) == "revoked":
        reasons.append("it is revoked")
    return reasons


def subject_alt_names(obj):
    try:
        return obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


# ---------------------------------------------------------------- the CA database

def default_database_path(ca_cert_path):
    """The database lives next to the CA certificate: ca.pem -> ca.db.json."""
    path = Path(ca_cert_path)
    return str(path.with_name(path.stem + ".db.json"))


class CADatabase:
    """Issued certificates of one CA (JSON): serial (hex), subject, not_after, status, revocation."""

    def __init__(self, path, data=None):
        self.path = str(path)
        self.data = data or {"version": DATABASE_VERSION, "crl_number": 0, "certificates": []}
        self.lock_wait_seconds = 0.0

    @classmethod
    def load(cls, path):
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            return cls(path)
        try:
            data = json.loads(text)
            if data.get("version") != DATABASE_VERSION or not isinstance(data.get("certificates"), list):
                raise ValueError
        except ValueError:
            raise CAError(
                f"CA database {path} is not a version {DATABASE_VERSION} CA database: restore it from backup or "
                "point `database` at the right file."
            ) from None
        return cls(path, data)

    def _entry(self, serial):
        wanted = serial_hex(serial)
        return next((e for e in self.data["certificates"] if e["serial"] == wanted), None)

    def status(self, serial):
        entry = self._entry(serial)
        return entry["status"] if entry else None

    def record_issued(self, cert):
        self.data["certificates"].append(dict(
            serial=serial_hex(cert.serial_number),
            subject=cert.subject.rfc4514_string(),
            not_after=cert.not_valid_after_utc.isoformat(),
            status="issued",
            revocation_date=None,
            revocation_reason=None,
        ))

    def record_unrecorded(self, cert, ca_cert, save=True):
        """Record a certificate of this CA that the database lacks (x509_issue stopped between writing the file and
        its record); True when it did. ``save`` False (check mode): only says whether it would."""
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        if self._entry(cert.serial_number) is not None:
            return False
        if save:
            self.record_issued(cert)
            self.save()
        return True

    def revoke(self, serial, reason="unspecified", when=None):
        """Mark ``serial`` revoked; returns False when it already was. Unknown serials are refused."""
        if reason not in REVOCATION_REASONS:
            raise CAError(f"Revocation reason {reason!r} is unknown; use one of {', '.join(REVOCATION_REASONS)}.")
        entry = self._entry(serial)
        if entry is None:
            raise CAError(
                f"Serial {serial_hex(serial)} is not in the CA database {self.path}: only certificates this CA "
                "issued can be revoked (check the serial, hex as in the database)."
            )
        if entry["status"] == "revoked":
            return False
        entry.update(status="revoked", revocation_date=(when or utcnow()).isoformat(), revocation_reason=reason)
        return True

    def revoked(self):
        return [e for e in self.data["certificates"] if e["status"] == "revoked"]

    def next_crl_number(self):
        self.data["crl_number"] = self.data.get("crl_number", 0) + 1
        return self.data["crl_number"]

    def save(self):
        write_file_atomic(self.path, (json.dumps(self.data, indent=2) + "\n").encode(), DATABASE_MODE)


@contextmanager
def locked_database(path, lock=True):
    """Yield the database at ``path``, loaded under an exclusive lock on ``<path>.lock`` held for the block.

    Parallel forks issuing from one CA (delegate_to the CA host) would otherwise lose each other's records.
    ``lock=False`` (check mode) only loads it.
    """
    if not lock:
        yield CADatabase.load(path)
        return
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, DATABASE_MODE)
    try:
        started = time.monotonic()
        fcntl.flock(fd, fcntl.LOCK_EX)
        waited = time.monotonic() - started  # the CA host as a shared resource: bench/ca_throughput.py
        database = CADatabase.load(path)
        database.lock_wait_seconds = waited
        yield database
    finally:
        os.close(fd)  # releases the lock


def parse_serial(text):
    """A serial given as hex (as in the database; optional 0x and colons) -> int."""
    cleaned = str(text).strip().lower().replace(":", "")
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or any(ch not in string.hexdigits for ch in cleaned):
        raise CAError(f"Serial {text!r} is not hex: give serials as in the CA database (e.g. '4f2a9c...').")
    return int(cleaned, 16)


# ---------------------------------------------------------------- CRLs

def _revoked_set(entries):
    return {(int(e["serial"], 16), e["revocation_reason"] or "unspecified") for e in entries}


def build_crl(ca_cert, ca_key, revoked_entries, next_update_days, crl_number, now=None):
    now = now or utcnow()
    check_ca_pair(ca_cert, ca_key.public_key(), now=now)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + datetime.timedelta(days=next_update_days))
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    for entry in revoked_entries:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"], 16))
            .revocation_date(datetime.datetime.fromisoformat(entry["revocation_date"]))
        )
        reason = entry["revocation_reason"] or "unspecified"
        if reason != "unspecified":  # RFC 5280 5.3.1: omit the reason code rather than say "unspecified"
            revoked = revoked.add_extension(x509.CRLReason(x509.ReasonFlags[reason]), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(ca_key, signature_hash(ca_key.public_key()))
    if not crl.is_signature_valid(ca_cert.public_key()):
        raise CAError("The CRL signature does not verify with the CA certificate: the CA key signed wrongly.")
    return crl


def crl_revoked_set(crl):
    found = set()
    for revoked in crl:
        try:
            reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            reason = "unspecified"
        found.add((revoked.serial_number, reason))
    return found


def read_crl(path):
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError:
        raise CAError(f"{path} exists but is not a PEM CRL: move it away or fix the path.") from None


def crl_differences(crl, ca_cert, revoked_entries, renew_before_days, now=None):
    """Why the CRL must be written again (empty list: keep it)."""
    now = now or utcnow()
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):
        return ["it was not signed by this CA"]
    reasons = []
    if crl_revoked_set(crl) != _revoked_set(revoked_entries):
        reasons.append("the set of revoked certificates changed")
    if crl.next_update_utc is None or crl.next_update_utc - now < datetime.timedelta(days=renew_before_days):
        reasons.append("its nextUpdate is within renew_before_days")
    return reasons


def crl_summary(crl):
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return dict(
        crl_number=number,
        issuer=crl.issuer.rfc4514_string(),
        last_update=crl.last_update_utc.isoformat(),
        next_update=crl.next_update_utc.isoformat() if crl.next_update_utc else None,
        revoked=sorted(serial_hex(serial) for serial, _when in crl_revoked_set(crl)),
    )
