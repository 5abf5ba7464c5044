# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate signing requests signed by a key that stays on a token (pure Python: cryptography).

A CSR is compared by content (public key, subject, extensions, signature hash), never by bytes: ECDSA on
a token is randomised, so two CSRs of the same request always differ.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier, SignatureAlgorithmOID

    DIGESTS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

    EXTENDED_KEY_USAGES = {
        "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
        "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
        "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
        "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    }

    _SAN_TYPES = {"DNS": x509.DNSName, "URI": x509.UniformResourceIdentifier, "email": x509.RFC822Name}
except ImportError:  # the modules report it: _cryptography.require_cryptography
    pass

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca


class CSRError(Exception):
    """A bad request or a CSR that failed its self-check; the message names the fix."""


RSA_PADDINGS = ("pkcs1v15", "pss")
KEY_USAGES = ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement")


def subject_name(subject):
    """x509.Name from a mapping (order kept) or a list of one-entry mappings (repeatable, order kept)."""
    if isinstance(subject, dict):
        parts = [subject]
    elif isinstance(subject, list) and subject and all(isinstance(item, dict) and len(item) == 1 for item in subject):
        parts = subject
    else:
        raise CSRError("subject must be a mapping such as {O: Example, CN: host1} or a list of one-entry mappings "
                       "such as [{OU: a}, {OU: b}, {CN: host1}]")
    try:
        rdns = [rdn for part in parts for rdn in _ca.build_name(part).rdns]
    except _ca.CAError as exc:
        raise CSRError(str(exc)) from None
    return x509.Name(rdns)


def parse_subject_alt_names(entries):
    """GeneralNames from strings such as ``DNS:host.example``, ``IP:192.0.2.1``, ``URI:spiffe://x``, ``email:a@b``."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise CSRError("subject_alt_name must be a list of strings such as ['DNS:host.example', 'IP:192.0.2.1']")
    names = []
    for entry in entries:
        kind, sep, value = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not sep or not value:
            raise CSRError("subject_alt_name entry %r must look like DNS:name, IP:address, URI:uri or email:address"
                           % (entry,))
        if kind == "IP":
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                raise CSRError("subject_alt_name %r: %r is not an IP address" % (entry, value)) from None
        elif kind in _SAN_TYPES:
            names.append(_SAN_TYPES[kind](value))
        else:
            raise CSRError("subject_alt_name entry %r has unknown type %r: use DNS, IP, URI or email" % (entry, kind))
    return names


def signature_digest(name, public_key):
    """The hash for signing: ``name`` (sha256/sha384/sha512) or, when None, SHA-384 for P-384 else SHA-256."""
    if name is None:
        return _ca.signature_hash(public_key)
    if not isinstance(name, str) or name.lower() not in DIGESTS:
        raise CSRError("digest %r is refused: IAM Roles Anywhere needs SHA-256 or stronger; use sha256 (P-256, RSA), "
                       "sha384 (P-384) or sha512" % (name,))
    return DIGESTS[name.lower()]()


@dataclass(frozen=True)
class CSRRequest:
    """What the CSR must contain."""

    subject: x509.Name
    subject_alt_names: tuple
    key_usage: tuple
    extended_key_usage: tuple
    digest: str
    rsa_padding: str


def build_request(subject, subject_alt_name=None, key_usage=("digitalSignature",), extended_key_usage=("clientAuth",),
                  digest=None, rsa_padding="pkcs1v15", public_key=None):
    """Validate the options of a CSR; ``digest`` None picks the key's conventional hash."""
    name = subject_name(subject)
    sans = tuple(parse_subject_alt_names(subject_alt_name))
    usages = tuple(key_usage or ())
    unknown = [u for u in usages if u not in KEY_USAGES]
    if unknown:
        raise CSRError("unknown key_usage %s: use %s" % (", ".join(map(repr, unknown)), ", ".join(KEY_USAGES)))
    ekus = tuple(extended_key_usage or ())
    for eku in ekus:
        if eku not in EXTENDED_KEY_USAGES and not _is_dotted_oid(eku):
            raise CSRError("unknown extended_key_usage %r: use %s or a dotted OID"
                           % (eku, ", ".join(EXTENDED_KEY_USAGES)))
    if rsa_padding not in RSA_PADDINGS:
        raise CSRError("rsa_padding must be pkcs1v15 or pss, got %r" % (rsa_padding,))
    digest_name = signature_digest(digest, public_key).name
    return CSRRequest(name, sans, usages, ekus, digest_name, rsa_padding)


def _is_dotted_oid(text):
    parts = text.split(".") if isinstance(text, str) else []
    return len(parts) > 1 and all(part.isdigit() for part in parts)


def _extensions(request):
    extensions = []
    if request.subject_alt_names:
        extensions.append((x509.SubjectAlternativeName(list(request.subject_alt_names)), False))
    if request.key_usage:
        flags = {name: name in request.key_usage for name in KEY_USAGES}
        extensions.append((x509.KeyUsage(
            digital_signature=flags["digitalSignature"], content_commitment=flags["nonRepudiation"],
            key_encipherment=flags["keyEncipherment"], data_encipherment=flags["dataEncipherment"],
            key_agreement=flags["keyAgreement"], key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), True))
    if request.extended_key_usage:
        oids = [EXTENDED_KEY_USAGES.get(eku) or ObjectIdentifier(eku) for eku in request.extended_key_usage]
        extensions.append((x509.ExtendedKeyUsage(oids), False))
    return extensions


def _padding(request, public_key):
    if isinstance(public_key, ec.EllipticCurvePublicKey) or request.rsa_padding == "pkcs1v15":
        return None
    return padding.PSS(mgf=padding.MGF1(DIGESTS[request.digest]()), salt_length=padding.PSS.DIGEST_LENGTH)


def sign_csr(key, request):
    """Build and sign the CSR with ``key`` (a token-backed key), then verify it before returning."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(request.subject)
    for extension, critical in _extensions(request):
        builder = builder.add_extension(extension, critical=critical)
    pss = _padding(request, key.public_key())
    kwargs = {"rsa_padding": pss} if pss is not None else {}
    csr = builder.sign(key, DIGESTS[request.digest](), **kwargs)
    if not csr.is_signature_valid or not _ca.same_public_key(csr.public_key(), key.public_key()):
        raise CSRError("the token produced a CSR whose signature does not verify: the token's signing is broken")
    return csr


def csr_differences(csr, public_key, request):
    """Why ``csr`` does not satisfy ``request`` for ``public_key`` (empty list: it does)."""
    reasons = []
    if not _ca.same_public_key(csr.public_key(), public_key):
        reasons.append("public key differs from the token key")
    if not csr.is_signature_valid:
        reasons.append("signature does not verify")
    if csr.subject != request.subject:
        reasons.append("subject differs")
    if _extension_values(csr) != _extension_values_of_request(request):
        reasons.append("extensions differ")
    if csr.signature_hash_algorithm is None or csr.signature_hash_algorithm.name != request.digest:
        reasons.append("signature hash differs")
    is_pss = csr.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
    if not isinstance(public_key, ec.EllipticCurvePublicKey) and is_pss != (request.rsa_padding == "pss"):
        reasons.append("RSA padding differs")
    return reasons


def _extension_values(csr):
    return {ext.oid.dotted_string: (ext.critical, ext.value) for ext in csr.extensions}


def _extension_values_of_request(request):
    return {ext.oid.dotted_string: (critical, ext) for ext, critical in _extensions(request)}


def load_csr_file(path):
    """``(csr, problem)``: the CSR at ``path``, or None and why not (it will be replaced)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None, "no CSR at %s" % path
    try:
        return x509.load_pem_x509_csr(data), None
    except ValueError:
        return None, "%s is not a PEM CSR" % path


def csr_pem(csr):
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_summary(csr):
    """Readable content of a CSR for diffs and results."""
    if csr is None:
        return {}
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san_text = [_general_name_text(name) for name in sans]
    except x509.ExtensionNotFound:
        san_text = []
    spki = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return {
        "subject": csr.subject.rfc4514_string(),
        "subject_alt_name": san_text,
        "signature_hash": csr.signature_hash_algorithm.name if csr.signature_hash_algorithm else None,
        "public_key_sha256": digest.finalize().hex(),
    }


def _general_name_text(name):
    prefix = {x509.DNSName: "DNS", x509.IPAddress: "IP", x509.UniformResourceIdentifier: "URI",
              x509.RFC822Name: "email"}.get(type(name), "other")
    return "%s:%s" % (prefix, name.value)
