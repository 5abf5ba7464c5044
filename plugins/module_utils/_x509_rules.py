# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IAM Roles Anywhere certificate rules: named violations, each with the fix.

Pure Python (cryptography only): used by the x509_* modules, the CA code and the tests.
Rule ids are stable; tests and users match on them, so never rename one.
"""
from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass

try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)

    # Subject attribute names accepted in `subject` mappings and `require_subject` lists.
    SUBJECT_ATTRIBUTES = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME,
        "DC": NameOID.DOMAIN_COMPONENT,
        "emailAddress": NameOID.EMAIL_ADDRESS,
        "serialNumber": NameOID.SERIAL_NUMBER,
    }
except ImportError:  # the modules report it: _cryptography.require_cryptography
    pass

ERROR = "error"
WARNING = "warning"

ROLES = ("client", "ca")
ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    fix: str
    severity: str = ERROR

    def as_dict(self):
        return asdict(self)

    def __str__(self):
        return f"[{self.rule}] {self.message} Fix: {self.fix}"


def errors(violations):
    return [v for v in violations if v.severity == ERROR]


def describe(violations):
    """One line per violation, for error messages."""
    return "; ".join(str(v) for v in violations)


def _extension(obj, ext_class):
    try:
        return obj.extensions.get_extension_for_class(ext_class)
    except x509.ExtensionNotFound:
        return None


def check_public_key(public_key, what="certificate"):
    """Key type, RSA size and EC curve rules (shared by certificates and CSRs)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return [Violation(
                "rsa_key_size",
                f"The {what} has an RSA-{public_key.key_size} key; Roles Anywhere needs RSA of at least "
                f"{MIN_RSA_BITS} bits.",
                "Generate a new RSA key of 2048, 3072 or 4096 bits (or an EC P-256/P-384 key).",
            )]
        return []
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ALLOWED_CURVES:
            return [Violation(
                "ec_curve",
                f"The {what} uses the curve {public_key.curve.name}; only P-256 (secp256r1) and P-384 "
                "(secp384r1) are supported.",
                "Generate a new EC key on secp256r1 or secp384r1.",
            )]
        return []
    return [Violation(
        "key_type",
        f"The {what} has a {type(public_key).__name__} key; Roles Anywhere signs with RSA or ECDSA keys.",
        "Generate an RSA (>= 2048 bits) or EC P-256/P-384 key.",
    )]


def check_signature_hash(hash_algorithm, what="certificate"):
    if isinstance(hash_algorithm, STRONG_HASHES):
        return []
    name = hash_algorithm.name.upper() if hash_algorithm is not None else "an unknown or weak hash"
    return [Violation(
        "signature_hash",
        f"The {what} is signed with {name}; Roles Anywhere requires SHA-256 or stronger (MD5 and SHA-1 are "
        "rejected).",
        f"Re-sign the {what} with SHA-256 (SHA-384 for P-384 keys).",
    )]


def _signature_hash(signed):
    """The signature's hash, or None when cryptography does not know it (MD2, MD4, ...): weak either way."""
    try:
        return signed.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None


def _check_validity(cert, now):
    found = []
    if cert.not_valid_after_utc <= now:
        found.append(Violation(
            "validity_expired",
            f"The certificate expired on {cert.not_valid_after_utc.isoformat()}.",
            "Issue a new certificate (renew it before it expires).",
        ))
    if cert.not_valid_before_utc > now:
        found.append(Violation(
            "validity_not_yet_valid",
            f"The certificate is valid only from {cert.not_valid_before_utc.isoformat()}.",
            "Check the clocks of the CA host and this host, or wait until the start date.",
        ))
    return found


def _check_basic_constraints(cert, role):
    ext = _extension(cert, x509.BasicConstraints)
    want_ca = role == "ca"
    wanted = "CA:TRUE" if want_ca else "CA:FALSE"
    if ext is None:
        return [Violation(
            "basic_constraints_missing",
            f"The certificate has no basicConstraints extension; a {role} certificate needs {wanted} (critical).",
            f"Re-issue it with basicConstraints {wanted}, marked critical.",
        )]
    found = []
    if ext.value.ca != want_ca:
        found.append(Violation(
            "basic_constraints_ca_true" if want_ca else "basic_constraints_ca_false",
            f"basicConstraints says CA:{'TRUE' if ext.value.ca else 'FALSE'}; a {role} certificate needs {wanted}.",
            f"Re-issue it with basicConstraints {wanted}"
            + (" (end-entity certificates must not be CAs)." if not want_ca else "."),
        ))
    if not ext.critical:
        found.append(Violation(
            "basic_constraints_critical",
            "basicConstraints is not marked critical.",
            "Re-issue it with basicConstraints marked critical.",
        ))
    return found


def _check_key_usage(cert, role):
    ext = _extension(cert, x509.KeyUsage)
    needed = ["digital_signature"] + (["key_cert_sign", "crl_sign"] if role == "ca" else [])
    if ext is None:
        return [Violation(
            "key_usage_missing",
            f"The certificate has no keyUsage extension; a {role} certificate needs "
            f"{', '.join(_ku_name(n) for n in needed)} (critical).",
            "Re-issue it with that keyUsage, marked critical.",
        )]
    found = []
    for name in needed:
        if not getattr(ext.value, name):
            found.append(Violation(
                f"key_usage_{name}",
                f"keyUsage lacks {_ku_name(name)}; a {role} certificate needs it.",
                f"Re-issue it with keyUsage {_ku_name(name)}.",
            ))
    if not ext.critical:
        found.append(Violation(
            "key_usage_critical",
            "keyUsage is not marked critical.",
            "Re-issue it with keyUsage marked critical.",
        ))
    return found


def _ku_name(attr):
    head, *rest = attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _check_identifiers(cert, role):
    found = []
    if _extension(cert, x509.SubjectKeyIdentifier) is None:
        found.append(Violation(
            "subject_key_identifier",
            "The certificate has no subjectKeyIdentifier.",
            "Re-issue it with a subjectKeyIdentifier (derived from its public key).",
            ERROR if role == "ca" else WARNING,
        ))
    if role == "client" and _extension(cert, x509.AuthorityKeyIdentifier) is None:
        found.append(Violation(
            "authority_key_identifier",
            "The certificate has no authorityKeyIdentifier, so the chain to its CA is found by name only.",
            "Re-issue it with authorityKeyIdentifier = the CA's subjectKeyIdentifier.",
        ))
    return found


def _check_client_auth(cert):
    ext = _extension(cert, x509.ExtendedKeyUsage)
    if ext is not None and ExtendedKeyUsageOID.CLIENT_AUTH in ext.value:
        return []
    return [Violation(
        "extended_key_usage_client_auth",
        "extendedKeyUsage does not include clientAuth (Roles Anywhere accepts this, TLS client checks do not).",
        "Re-issue it with extendedKeyUsage clientAuth.",
        WARNING,
    )]


def check_certificate(cert, role, now=None):
    """All Roles Anywhere rules for a ``client`` (end-entity) or ``ca`` certificate."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if cert.version != x509.Version.v3:
        found = [Violation(
            "version_v3",
            f"The certificate is X.509 {cert.version.name}; Roles Anywhere needs v3 (with extensions).",
            "Re-issue it as an X.509 v3 certificate.",
        )]
    else:
        found = []
    found += check_signature_hash(_signature_hash(cert))
    found += check_public_key(cert.public_key())
    found += _check_validity(cert, now)
    found += _check_basic_constraints(cert, role)
    found += _check_key_usage(cert, role)
    found += _check_identifiers(cert, role)
    if role == "client":
        found += _check_client_auth(cert)
    if not cert.subject.rdns:
        found.append(Violation(
            "subject_empty",
            "The certificate has an empty subject; Roles Anywhere maps subject attributes to session tags.",
            "Re-issue it with a subject (at least CN).",
        ))
    return found


def subject_attributes_missing(name, required):
    """Names from ``required`` (e.g. ["CN", "OU"]) that ``name`` (x509.Name) does not carry."""
    return [attr for attr in required if not name.get_attributes_for_oid(SUBJECT_ATTRIBUTES[attr])]


def check_csr(csr, require_subject=()):
    """Rules a CSR must pass before the CA signs it."""
    weak_hash = check_signature_hash(_signature_hash(csr), "CSR")
    if weak_hash:  # cryptography cannot verify SHA-1/MD5 signatures: the weak hash is the finding
        return weak_hash
    if not csr.is_signature_valid:
        return [Violation(
            "csr_signature",
            "The CSR signature does not verify: the request was altered after signing or signed by another key.",
            "Create the CSR again with the key it names (pkcs11_csr) and send it unchanged.",
        )]
    found = check_public_key(csr.public_key(), "CSR")
    try:
        constraints = csr.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        found.append(Violation(
            "csr_requests_ca",
            "The CSR asks for basicConstraints CA:TRUE; this CA issues only end-entity (CA:FALSE) certificates.",
            "Create the CSR without a CA:TRUE basicConstraints extension.",
        ))
    for attr in subject_attributes_missing(csr.subject, require_subject):
        found.append(Violation(
            "csr_subject_missing",
            f"The CSR subject lacks {attr}, which this CA requires (require_subject).",
            f"Create the CSR with a subject that includes {attr}.",
        ))
    return found


def check_issued_by(cert, ca_cert):
    """The certificate's signature and issuer name must match ``ca_cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception as exc:  # ValueError (names), TypeError (key type), InvalidSignature
        return [Violation(
            "issuer_signature",
            f"The certificate was not issued by {ca_cert.subject.rfc4514_string()} "
            f"({type(exc).__name__}: {exc or 'signature does not verify'}).",
            "Issue it from the CA of the trust anchor, or check ca_cert_path.",
        )]
    return []
